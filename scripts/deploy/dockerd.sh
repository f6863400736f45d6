#!/usr/bin/env bash
# A private Docker daemon for the container test tier (tests/deploy/test_container_tier.py), from
# Debian's docker.io (scripts/setup.sh installs it). Host network only: no bridge, no iptables rules
# (`--bridge=none --iptables=false`), so containers use `--network host` and nothing else of the
# machine's networking changes. Its socket, pid file, state and data live in FOLDER.
#
#   scripts/deploy/dockerd.sh start FOLDER   # prints the daemon's pid once its socket answers
#   scripts/deploy/dockerd.sh stop FOLDER    # SIGTERM by its pid (it stops its containerd too)
#
# Clients: DOCKER_HOST=unix://FOLDER/docker.sock
set -euo pipefail

cmd="${1:?usage: dockerd.sh start|stop FOLDER}"
folder="${2:?FOLDER missing}"
pidfile="$folder/dockerd.pid"

case "$cmd" in
start)
    command -v dockerd >/dev/null || { echo "dockerd not found: apt-get install docker.io (scripts/setup.sh does)" >&2; exit 1; }
    mkdir -p "$folder/data" "$folder/exec"
    # setsid: the daemon outlives this script; the caller stops it by the pid printed below.
    setsid dockerd --host "unix://$folder/docker.sock" --pidfile "$pidfile" \
        --data-root "$folder/data" --exec-root "$folder/exec" \
        --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
        >"$folder/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
        if [ -S "$folder/docker.sock" ] && DOCKER_HOST="unix://$folder/docker.sock" docker version >/dev/null 2>&1; then
            cat "$pidfile"
            echo
            exit 0
        fi
        sleep 0.5
    done
    echo "dockerd did not answer within 60 s:" >&2
    tail -n 30 "$folder/dockerd.log" >&2
    exit 1
    ;;
stop)
    if [ -f "$pidfile" ]; then
        pid=$(cat "$pidfile")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # what the daemon leaves mounted under FOLDER (its default network namespace, overlays of a
    # daemon killed hard), so that FOLDER can be removed
    grep -o " $folder/[^ ]*" /proc/mounts | sort -r | xargs -r -n 1 umount -l 2>/dev/null || true
    ;;
*)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac
