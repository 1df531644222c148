#!/usr/bin/env bash
# Installs what tenant_guard needs on a Debian 12 machine, as root; does nothing that is done.
#   Debian packages: PostgreSQL 15 server and headers, libclang (bindgen), sudo (pgrx --runas)
#   cargo-pgrx 0.18.0, initialised against the system PostgreSQL 15 (no download)
#   psycopg for the multi-connection tests
# Source it (. scripts/setup.sh) or run it.
set -euo pipefail

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Debian packages, installed in one go when any is missing:
#   PostgreSQL 15 server and headers, libclang/clang (bindgen, the C hook trampolines), sudo
#   (cargo pgrx test --runas), pkg-config; pgbouncer (connection-pool tests); chromium and a font
#   (the Next.js example's end-to-end test, driven by playwright-core: no browser download);
#   postgresql-15-pgaudit (the benchmark's pgaudit arm).
need_pkgs=()
for p in postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo pkg-config \
         pgbouncer chromium fonts-dejavu-core postgresql-15-pgaudit; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing Debian packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
# The Debian package starts a cluster on port 5432 that we do not use.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q '^15 *main .*online'; then
    pg_ctlcluster 15 main stop || true
fi

if ! cargo pgrx --version 2>/dev/null | grep -q ' 0\.18\.0'; then
    log "installing cargo-pgrx 0.18.0 (about 3 minutes)"
    cargo install cargo-pgrx --version 0.18.0 --locked --quiet
fi
if ! grep -qs '^pg15 *=' "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    log "cargo pgrx init --pg15 $PG_CONFIG"
    cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi

if ! python3 -c 'import psycopg' 2>/dev/null; then
    log "installing psycopg (multi-connection tests)"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check 'psycopg[binary]>=3.1,<3.3'
fi

# npm packages of the client examples (pg_test/sessions/test_examples.py), from their lock files;
# again only when a lock file changed. --ignore-scripts: nothing downloads engines or binaries.
examples_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/examples"
for ex in node-postgres prisma nextjs-invoices; do
    d="$examples_dir/$ex"
    [ -f "$d/package-lock.json" ] || continue
    if ! cmp -s "$d/package-lock.json" "$d/node_modules/.tenant_guard-installed-lock"; then
        if command -v npm >/dev/null; then
            log "npm ci in examples/$ex"
            (cd "$d" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) \
                && cp "$d/package-lock.json" "$d/node_modules/.tenant_guard-installed-lock"
        else
            log "npm is missing: the Node.js examples' tests will fail (they need Node.js 20.19 or later)"
        fi
    fi
done
