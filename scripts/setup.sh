#!/usr/bin/env bash
# Create .venv (if needed) and install songexplorer-dagster with its test extras into it.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "songexplorer-dagster needs Python >= 3.11; set PYTHON=/path/to/python3.11+" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
.venv/bin/python -m pip install --quiet -e '.[dev,k8s]'

# The deploy tiers (tests/deploy/): PostgreSQL 15 for the service tier; Debian's docker.io (a
# private dockerd, host network only) and debootstrap (the image's base) for the container tier.
if [ "${SONGEXPLORER_SKIP_DEPLOY_TIERS:-0}" != "1" ]; then
    missing=()
    [ -n "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null)" ] || missing+=(postgresql)
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
    if [ "${#missing[@]}" -gt 0 ]; then
        if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
            echo "installing ${missing[*]} for the service and container tiers (apt-get)..."
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        else
            echo "note: ${missing[*]} not installed; the service/container tiers (tests/deploy/) will be skipped" >&2
        fi
    fi
fi

# The annotator's browser test drives Debian's Chromium through Playwright (no browser download).
if [ ! -x /usr/bin/chromium ] && [ "${SONGEXPLORER_SKIP_CHROMIUM:-0}" != "1" ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
        echo "installing Debian's chromium for the annotator's browser test (apt-get)..."
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq >/dev/null
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "note: /usr/bin/chromium not found; the browser test will be skipped (install chromium to run it)" >&2
    fi
fi
