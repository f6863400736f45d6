#!/usr/bin/env bash
# README command 2: set up and run the whole test suite. .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Keep TensorFlow quiet and on the CPU threads this machine has.
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest "$@"
