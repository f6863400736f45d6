#!/usr/bin/env bash
# A throwaway PostgreSQL 15 for the service and container test tiers (tests/deploy/), or for trying
# deploy/dagster-postgres.yaml on one machine. It listens on 127.0.0.1 only, at the port given,
# keeps everything (data, socket, log) in FOLDER, and trusts local connections (a test server:
# never expose it).
#
#   scripts/deploy/postgres.sh start FOLDER PORT   # initdb (first time), start; prints the server's pid
#   scripts/deploy/postgres.sh createdb FOLDER PORT NAME
#   scripts/deploy/postgres.sh stop FOLDER         # fast shutdown (the caller may also kill the pid)
#
# Run as root, the server runs as the `postgres` user (PostgreSQL refuses to run as root) and FOLDER
# is handed to it; run as anyone else, the server runs as that user. Debian's `postgresql` package
# provides the binaries (scripts/setup.sh installs it).
set -euo pipefail

pg_bin() {
    local dir
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
        return
    fi
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
        echo "PostgreSQL server binaries not found: install Debian's postgresql (scripts/setup.sh does)" >&2
        exit 1
    fi
    echo "$dir"
}

as_owner() {
    if [ "$(id -u)" = "0" ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

cmd="${1:?usage: postgres.sh start|createdb|stop FOLDER [PORT [NAME]]}"
folder="${2:?FOLDER missing}"
BIN=$(pg_bin)

case "$cmd" in
start)
    port="${3:?PORT missing}"
    mkdir -p "$folder"
    if [ "$(id -u)" = "0" ]; then
        chown postgres: "$folder"
        chmod 700 "$folder"
    fi
    if [ ! -f "$folder/data/PG_VERSION" ]; then
        as_owner "$BIN/initdb" -D "$folder/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$folder/initdb.log" 2>&1 \
            || { cat "$folder/initdb.log" >&2; exit 1; }
    fi
    # -k: the Unix socket in FOLDER (not /var/run/postgresql); listen_addresses: loopback only.
    as_owner "$BIN/pg_ctl" -D "$folder/data" -l "$folder/server.log" -w -t 60 \
        -o "-p $port -k $folder -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null \
        || { cat "$folder/server.log" >&2; exit 1; }
    head -n 1 "$folder/data/postmaster.pid"
    ;;
createdb)
    port="${3:?PORT missing}"
    name="${4:?NAME missing}"
    as_owner "$BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$name"
    ;;
stop)
    if [ -f "$folder/data/postmaster.pid" ]; then
        as_owner "$BIN/pg_ctl" -D "$folder/data" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
*)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac
