#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster owned by the postgres user (initdb refuses root).
#   scripts/cluster.sh start DIR PORT [preload|nopreload]   (re-initialises DIR)
#   scripts/cluster.sh restart DIR [fast|immediate|smart]
#   scripts/cluster.sh stop DIR
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
cmd=$1; dir=$2

as_pg() { runuser -u postgres -- "$@"; }

stop() {
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

case "$cmd" in
start)
    port=$3; preload=${4:-preload}
    stop
    rm -rf "$dir"
    mkdir -p "$dir"
    chown postgres: "$dir"
    as_pg "$BIN/initdb" -D "$dir/data" -A trust -U postgres --locale=C.UTF-8 -E UTF8 >/dev/null
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = '$dir'"
        echo "max_connections = 100"
        echo "fsync = off"
        echo "log_min_messages = warning"
        [ "$preload" = preload ] && echo "shared_preload_libraries = 'tenant_guard'"
    } >>"$dir/data/postgresql.conf"
    # no Rust backtraces in error DETAILs, whatever the calling shell has set
    RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
    ;;
stop)
    stop
    ;;
restart)
    # scripts/cluster.sh restart DIR [fast|immediate|smart]: same data, same settings
    mode=${3:-fast}
    as_pg "$BIN/pg_ctl" -D "$dir/data" -m "$mode" -w stop >/dev/null
    RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
    ;;
*)
    echo "usage: $0 start DIR PORT [preload|nopreload] | restart DIR [MODE] | stop DIR" >&2
    exit 2
    ;;
esac
