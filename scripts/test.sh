#!/usr/bin/env bash
# README command 2: set up and run the whole test suite. .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Keep TensorFlow quiet and on the CPU threads this machine has.
export TF_CPP_MIN_LOG_LEVEL=2
# setup.sh installed what the deploy tiers need (as root, with apt): their servers must start here,
# so tests/deploy/ fails rather than skips when one does not.
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 && [ "${SONGEXPLORER_SKIP_DEPLOY_TIERS:-0}" != "1" ]; then
    export SONGEXPLORER_DEPLOY_TIERS_REQUIRED="${SONGEXPLORER_DEPLOY_TIERS_REQUIRED:-1}"
fi
exec .venv/bin/python -m pytest "$@"
