#!/usr/bin/env bash
# Creates the example's database "invoices" anew on a running PostgreSQL 15 cluster that preloads
# tenant_guard, and configures the token key the Next.js server signs with.
#   db/setup.sh SOCKET_DIR PORT      with TG_TOKEN_KID and TG_TOKEN_SECRET in the environment
# Connects as the superuser "postgres" (the throwaway clusters of scripts/cluster.sh trust it).
# Other entries of tenant_guard.token_keys are kept; the entry with our key id is replaced.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$1; port=$2
: "${TG_TOKEN_KID:?set TG_TOKEN_KID}" "${TG_TOKEN_SECRET:?set TG_TOKEN_SECRET (at least 16 bytes)}"
case "$TG_TOKEN_KID$TG_TOKEN_SECRET" in *[,:\'\ ]*) echo "the key id and secret may not contain , : ' or spaces" >&2; exit 2;; esac

sql() { PGOPTIONS="-c client_min_messages=warning" psql -h "$dir" -p "$port" -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; }

sql -d postgres -c "DROP DATABASE IF EXISTS invoices WITH (FORCE)"
sql -d postgres -f "$here/roles.sql"
sql -d postgres -c "CREATE DATABASE invoices"
sql -d invoices -f "$here/schema.sql" >/dev/null

keys=$(sql -d postgres -Atc "SHOW tenant_guard.token_keys")
new=$(printf '%s' "$keys" | tr ',' '\n' | sed 's/^ *//' | { grep -v -e '^$' -e "^$TG_TOKEN_KID:" || true; } | paste -sd, -)
new="${new:+$new,}$TG_TOKEN_KID:$TG_TOKEN_SECRET"
echo "ALTER SYSTEM SET tenant_guard.token_keys = :'keys';" | sql -d postgres -v keys="$new"
sql -d postgres -Atc "SELECT pg_reload_conf()" >/dev/null
# The reload is asynchronous: wait until a new session sees our key.
for _ in $(seq 50); do
    now=$(sql -d postgres -Atc "SHOW tenant_guard.token_keys")
    case ",$now," in *",$TG_TOKEN_KID:$TG_TOKEN_SECRET,"*) exit 0;; esac
    sleep 0.1
done
echo "tenant_guard.token_keys did not take the new key" >&2
exit 1
