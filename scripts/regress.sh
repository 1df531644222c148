#!/usr/bin/env bash
# Runs one pg_regress suite against a fresh cluster (which this script starts and stops).
#   scripts/regress.sh SUITE_DIR PORT preload|nopreload
# SUITE_DIR holds schedule, sql/ and expected/. Prints "regress SUITE: N passed, M failed".
# With REGRESS_KEEP=1 the cluster is left running (socket in target/regress-SUITE).
set -uo pipefail
cd "$(dirname "$0")/.."
suite_dir=$1; port=$2; preload=$3
name=$(basename "$suite_dir")
work="$PWD/target/regress-$name"
PGXS_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress

bash scripts/cluster.sh start "$work/cluster" "$port" "$preload" || { echo "regress $name: 0 passed, 1 failed"; exit 1; }
/usr/lib/postgresql/15/bin/createdb -h "$work/cluster" -p "$port" -U postgres regression
rm -rf "$work/out"; mkdir -p "$work/out"
"$PGXS_REGRESS" --bindir=/usr/lib/postgresql/15/bin --host="$work/cluster" --port="$port" \
    --user=postgres --use-existing --dbname=regression \
    --inputdir="$suite_dir" --outputdir="$work/out" --schedule="$suite_dir/schedule" >"$work/out/pg_regress.log" 2>&1
rc=$?
[ "${REGRESS_KEEP:-0}" = 1 ] || bash scripts/cluster.sh stop "$work/cluster"
grep -E '^(test| ) |^ok |^not ok ' "$work/out/pg_regress.log" | sed 's/^/  /'
passed=$(grep -cE '\.\.\. ok|^ok ' "$work/out/pg_regress.log")
failed=$(grep -cE '\.\.\. FAILED|^not ok ' "$work/out/pg_regress.log")
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; cat "$work/out/pg_regress.log"; fi
if [ "$failed" -gt 0 ] && [ -f "$work/out/regression.diffs" ]; then
    echo "  --- diffs ($work/out/regression.diffs) ---"; head -200 "$work/out/regression.diffs"
fi
echo "regress $name: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
