#!/usr/bin/env bash
# README command 1: set up, create the demo project, and start the platform on 127.0.0.1:
#   Dagster UI + daemon  http://127.0.0.1:3000  (sensors and automation process every recording)
#   MLflow UI            http://127.0.0.1:5000  (every trained model is a run; the link printed opens them)
#   Annotator            http://127.0.0.1:5006/annotate?token=...  (the token is made at each start;
#                        the full address is printed below and kept in $SONGEXPLORER_PROJECT/run/annotator-url)
#   Plots for Dagster    http://127.0.0.1:5007      (the PNGs Dagster's pages show inline)
# Ports: DAGSTER_PORT, MLFLOW_PORT, ANNOTATOR_PORT, PLOTS_PORT.
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
MLFLOW_PORT="${MLFLOW_PORT:-5000}"
export ANNOTATOR_PORT="${ANNOTATOR_PORT:-5006}"   # Dagster's "open_in_annotator" links use it
PLOTS_PORT="${PLOTS_PORT:-5007}"
export SONGEXPLORER_MLFLOW_UI="http://127.0.0.1:$MLFLOW_PORT"
export SONGEXPLORER_DAGSTER_UI="http://127.0.0.1:$DAGSTER_PORT"  # the annotator's links to Dagster jobs
export SONGEXPLORER_PLOTS_URL="http://127.0.0.1:$PLOTS_PORT"
mkdir -p "$SONGEXPLORER_PROJECT/mlflow/artifacts"
# The project's experiment (a model-training experiment) and the address that opens its training runs;
# made before the MLflow server starts so that only one process creates the store's tables.
MLFLOW_RUNS_URL="$(.venv/bin/python -c 'import sys; from songexplorer_core.tracking import TrackingConfig, experiment_url; print(experiment_url(TrackingConfig.for_project_dir(sys.argv[1], ui_url=sys.argv[2])))' \
    "$SONGEXPLORER_PROJECT/mlflow" "$SONGEXPLORER_MLFLOW_UI" 2>/dev/null || echo "$SONGEXPLORER_MLFLOW_UI")"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    sleep 2
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# Each service in its own process group so Ctrl-C / cleanup stops all of its children.
# dagster dev runs in DAGSTER_HOME: started from the repo it would warn that the repo's
# dagster.yaml (the instance template) is not used, which is as intended.
REPO="$PWD"
(cd "$DAGSTER_HOME" && exec setsid "$REPO/.venv/bin/dagster" dev -w "$REPO/workspace.yaml" -h 127.0.0.1 \
    -p "$DAGSTER_PORT") &
pids+=($!)
setsid .venv/bin/mlflow server --host 127.0.0.1 --port "$MLFLOW_PORT" \
    --backend-store-uri "sqlite:///$SONGEXPLORER_PROJECT/mlflow/mlflow.db" \
    --default-artifact-root "$SONGEXPLORER_PROJECT/mlflow/artifacts" &
pids+=($!)
ANNOTATOR_URL_FILE="$SONGEXPLORER_PROJECT/run/annotator-url"  # written (mode 0600) once the annotator listens
rm -f "$ANNOTATOR_URL_FILE"
setsid .venv/bin/songexplorer annotate --project "$SONGEXPLORER_PROJECT" --address 127.0.0.1 --port "$ANNOTATOR_PORT" &
pids+=($!)
setsid .venv/bin/songexplorer plots --project "$SONGEXPLORER_PROJECT" --address 127.0.0.1 --port "$PLOTS_PORT" &
pids+=($!)
for _ in $(seq 120); do [ -s "$ANNOTATOR_URL_FILE" ] && break; sleep 0.5; done
ANNOTATOR_URL="$(cat "$ANNOTATOR_URL_FILE" 2>/dev/null || echo "http://127.0.0.1:$ANNOTATOR_PORT/annotate?token=... (not started yet: see $ANNOTATOR_URL_FILE)")"

echo
echo "songexplorer-dagster is starting; project: $SONGEXPLORER_PROJECT"
echo "  Dagster UI:  http://127.0.0.1:$DAGSTER_PORT   (recordings appear as partitions within ~30 s)"
echo "  MLflow UI:   $MLFLOW_RUNS_URL   (the project's training runs)"
echo "  Annotator:   $ANNOTATOR_URL"
echo "               (open this address once; later links from Dagster work in that browser)"
echo "  (ports: DAGSTER_PORT, MLFLOW_PORT, ANNOTATOR_PORT, PLOTS_PORT=$PLOTS_PORT serves the plots Dagster shows)"
echo "  Add a recording: copy a WAV into $SONGEXPLORER_PROJECT/groundtruth/"
echo "  Press Ctrl-C to stop."
wait -n "${pids[@]}"
