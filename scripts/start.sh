#!/usr/bin/env bash
# README command 1: set up, create the demo project, and start the platform on 127.0.0.1:
#   Dagster UI + daemon  http://127.0.0.1:3000  (the sensor picks up every recording by itself)
# Project folder: $SONGEXPLORER_PROJECT (default ./songexplorer-project). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export SONGEXPLORER_PROJECT="$(realpath -m "${SONGEXPLORER_PROJECT:-songexplorer-project}")"
if [ ! -d "$SONGEXPLORER_PROJECT/groundtruth" ] || [ -z "$(ls -A "$SONGEXPLORER_PROJECT/groundtruth" 2>/dev/null)" ]; then
    .venv/bin/songexplorer demo "$SONGEXPLORER_PROJECT"
else
    .venv/bin/songexplorer init "$SONGEXPLORER_PROJECT" >/dev/null
fi
export DAGSTER_HOME="$SONGEXPLORER_PROJECT/dagster_home"
DAGSTER_PORT="${DAGSTER_PORT:-3000}"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    sleep 2
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# Each service in its own process group so Ctrl-C / cleanup stops all of its children.
setsid .venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p "$DAGSTER_PORT" &
pids+=($!)

echo
echo "songexplorer-dagster is starting; project: $SONGEXPLORER_PROJECT"
echo "  Dagster UI:  http://127.0.0.1:$DAGSTER_PORT   (recordings appear as partitions within ~30 s)"
echo "  Add a recording: copy a WAV into $SONGEXPLORER_PROJECT/groundtruth/"
echo "  Press Ctrl-C to stop."
wait -n "${pids[@]}"
