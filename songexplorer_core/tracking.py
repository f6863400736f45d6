"""Every trained model is an MLflow run; the project's registered model holds its versions.

The tracking store defaults to SQLite and an artifact folder inside the project
(``<project>/mlflow/``); any tracking URI can be configured instead. The version with the best
validation F1 carries the alias ``champion`` unless a person has pinned one (a registered-model
tag), so classification always knows which model to use.

mlflow is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

CHAMPION_ALIAS = "champion"
#: Registered-model tag naming the version a person pinned as champion.
PINNED_TAG = "pinned_champion_version"
#: Run metric that picks the champion when none is pinned.
DEFAULT_CHAMPION_METRIC = "validation_f1_macro"
#: Artifact folder, inside each run, holding the model exactly as songexplorer_core saves it.
MODEL_FOLDER_ARTIFACT = "trained_model"
#: Experiment tag declaring what an experiment holds (MLflow 3: ``genai_development`` or
#: ``custom_model_development``, the "Machine learning" kind); set on the project's experiment.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
#: Query of every UI link made here. MLflow 3.17's UI chooses an experiment's landing page from a
#: "workflow type" that defaults to GenAI (traces, an assistant) and is read first from this
#: parameter, then from the browser's storage; the experiment tag above is not consulted by it
#: (mlflow/server/js, the experiment page's kind hook), so links carry the parameter.
ML_VIEW_QUERY = "workflowType=machine_learning"
#: Run tags linking a training to the Dagster run that made it.
DAGSTER_RUN_ID_TAG, DAGSTER_RUN_URL_TAG = "songexplorer.dagster_run_id", "songexplorer.dagster_run_url"
#: Model-version tags with the promotion outcome and its reason in words (:func:`record_outcome`).
OUTCOME_TAG, REASON_TAG = "promotion", "promotion_reason"
#: Starts the paragraph :func:`record_outcome` writes into a model version's description.
PROMOTION_HEADING = "**Promotion:**"
#: Run tag with the labels annotated both as ranges and as points (``label_kinds``), if any.
MIXED_KINDS_TAG = "songexplorer.mixed_label_kinds"

#: MLflow draws a run's metrics as charts grouped in sections named by the part of a metric's key
#: before its last ``/``, sections in alphabetical order and keys without ``/`` last ("Model
#: metrics"), charts in a section alphabetical (mlflow/server/js: the charts' section utility).
#: :func:`metric_key` gives the project's metric names keys in numbered sections so the scores
#: people decide by come first: F1 per label, then the loss and accuracy curves, then precision
#: and recall per label; counts (checkpoint, parameters, seconds) stay in the last section.
METRIC_SECTIONS = {"f1": "1 F1", "loss": "2 loss", "accuracy": "3 accuracy", "precision": "4 precision",
                   "recall": "5 recall"}
_METRIC_NAME = re.compile(r"^(train|validation|dense)_(f1|loss|accuracy|precision|recall)(?:_(.+))?$")


def metric_key(name: str) -> str:
    """The MLflow key of one of the project's metric names: ``validation_f1_<label>`` ->
    ``"1 F1/validation <label>"``, ``dense_f1_macro`` -> ``"1 F1/dense macro"``, ``validation_f1``
    -> ``"1 F1/validation overall"``, ``train_loss`` -> ``"2 loss/train"``,
    ``validation_recall_<label>`` -> ``"5 recall/validation <label>"``; any other name is kept."""
    match = _METRIC_NAME.match(name)
    if match is None:
        return name
    split, measure, rest = match.groups()
    if rest is None and measure in ("f1", "precision", "recall"):
        rest = "overall"
    return f"{METRIC_SECTIONS[measure]}/{split}{' ' + rest if rest else ''}"


def run_metric(metrics: Mapping[str, float], name: str, default: float = math.nan) -> float:
    """Metric ``name`` of a run's ``data.metrics``, under its key (:func:`metric_key`) or, for runs
    logged before the keys had sections, under the name itself."""
    return float(metrics.get(metric_key(name), metrics.get(name, default)))


class TrackingError(RuntimeError):
    """MLflow has no such model/version, or the store is unreachable; the message says which."""


@dataclass(frozen=True)
class TrackingConfig:
    """Where runs and models go.

    Attributes:
        tracking_uri: e.g. ``sqlite:////path/project/mlflow/mlflow.db`` or ``http://host:5000``.
        artifact_location: where a new experiment stores artifacts (``None``: the server decides).
        experiment: experiment name; one per project.
        registered_model: registered model name; one per project.
        ui_url: base address of the MLflow UI, for links.
    """

    tracking_uri: str
    artifact_location: str | None = None
    experiment: str = "songexplorer"
    registered_model: str = "songexplorer"
    ui_url: str = "http://127.0.0.1:5000"

    @classmethod
    def for_project_dir(cls, mlflow_dir: str | os.PathLike, **overrides) -> "TrackingConfig":
        """SQLite store and artifacts inside ``mlflow_dir`` (a project's ``mlflow/`` folder)."""
        mlflow_dir = Path(mlflow_dir).resolve()
        mlflow_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            tracking_uri=f"sqlite:///{mlflow_dir / 'mlflow.db'}",
            artifact_location=(mlflow_dir / "artifacts").as_uri(),
            **overrides,
        )

    def client(self):
        import mlflow

        return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{ML_VIEW_QUERY}"

    def experiment_url(self, experiment_id: str) -> str:
        """The experiment's page, opening on its training runs (:data:`ML_VIEW_QUERY`)."""
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}?{ML_VIEW_QUERY}"


@dataclass(frozen=True)
class TrackedModel:
    """A logged training run and the registered model version it produced."""

    run_id: str
    experiment_id: str
    version: str
    run_url: str
    champion_version: str | None


def _experiment_id(config: TrackingConfig) -> str:
    """The project's experiment (created if missing), declared a model-training experiment."""
    client = config.client()
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is None:
        return client.create_experiment(config.experiment, artifact_location=config.artifact_location,
                                        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    if (experiment.tags or {}).get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def experiment_url(config: TrackingConfig) -> str:
    """Address of the project's experiment in the MLflow UI, on its training runs (the experiment
    is created, as a model-training experiment, if it does not exist yet)."""
    return config.experiment_url(_experiment_id(config))


def training_run_name(*, recipe: str, labels: Sequence[str], when: datetime | None = None) -> str:
    """What a training run is, for its name: recipe, labels and local time, e.g.
    ``"default recipe · mel-pulse+mel-sine · 2026-12-03 12:40"`` (more than three labels are
    counted). :func:`log_training_run` puts the model version in front once it is registered."""
    labels = list(labels)
    what = "+".join(labels) if len(labels) <= 3 else f"{len(labels)} labels"
    return f"{recipe} recipe · {what} · {(when or datetime.now()).strftime('%Y-%m-%d %H:%M')}"


def keras_signature(keras_model, example: np.ndarray):
    """MLflow's input/output signature of a Keras model from one example input
    (``mlflow.models.infer_signature``), with the dimensions Keras leaves free (batch, tics) as
    -1: any length."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import Schema, TensorSpec

    output = np.asarray(keras_model(example, training=False))
    inferred = infer_signature(example, output)

    def free(schema, shape):
        (spec,) = schema.inputs
        dims = tuple(-1 if d is None else int(d) for d in shape)
        return Schema([TensorSpec(spec.type, dims, spec.name)])

    return ModelSignature(inputs=free(inferred.inputs, keras_model.input_shape),
                          outputs=free(inferred.outputs, keras_model.output_shape))


def flatten_params(params: Mapping, prefix: str = "") -> dict[str, str]:
    """Nested hyperparameters -> flat ``{"a.b": "value"}`` strings, as MLflow params want."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = ",".join(str(v) for v in value)
        else:
            flat[name] = str(value)
    return flat


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def log_training_run(
    config: TrackingConfig,
    *,
    params: Mapping,
    history: pd.DataFrame | None,
    metrics: Mapping[str, float],
    model_dir: str | os.PathLike,
    keras_model=None,
    artifacts: list[str | os.PathLike] = (),
    tags: Mapping[str, str] | None = None,
    run_name: str | None = None,
    champion_metric: str = DEFAULT_CHAMPION_METRIC,
    description: str = "",
    signature_example: np.ndarray | None = None,
) -> TrackedModel:
    """Log one training as an MLflow run and register its model as a new version.

    Args:
        params: every hyperparameter (nested mappings are flattened to ``a.b``).
        history: per-step curves; every numeric column except ``step`` is logged as a metric
            at its ``step``.
        metrics: final metrics, e.g. ``validation_f1_macro``, ``validation_f1_<label>``.
        model_dir: the folder ``songexplorer_core.models.save_trained_model`` wrote; logged as
            the ``trained_model`` artifact so classification gets labels, rates and weights.
        keras_model: the Keras model, also logged in MLflow's Keras flavour (loadable with
            ``mlflow.keras.load_model``) and registered; if ``None`` the folder is registered.
        artifacts: further files or folders (plots, thresholds, confusion matrices).
        run_name: what the training is (:func:`training_run_name`); the run is named
            ``v<version> · <run_name>`` once its model version is registered.
        champion_metric: run metric that decides the champion alias afterwards.
        description: markdown shown as the run's and the model version's description (what was
            trained on what, links); the version's later gets its promotion outcome.
        signature_example: one input of ``keras_model`` (batch, tics, channels), from which the
            registered model's signature is inferred (:func:`keras_signature`).

    Metric names go to MLflow under :func:`metric_key` (sections that put F1 first).
    """
    import mlflow

    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_registry_uri(config.tracking_uri)
    experiment_id = _experiment_id(config)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        flat = flatten_params(params)
        for start in range(0, len(flat), 100):  # MLflow takes at most 100 params per batch
            mlflow.log_params(dict(list(flat.items())[start : start + 100]))
        if history is not None and len(history):
            for column in history.columns:
                if column == "step" or not pd.api.types.is_numeric_dtype(history[column]):
                    continue
                for step, value in zip(history["step"], history[column]):
                    if _finite(value):
                        mlflow.log_metric(metric_key(column), float(value), step=int(step))
        mlflow.log_metrics({metric_key(k): float(v) for k, v in metrics.items() if _finite(v)})
        if tags:
            mlflow.set_tags(dict(tags))
        if description:
            mlflow.set_tag("mlflow.note.content", description)
        mlflow.log_artifacts(str(model_dir), artifact_path=MODEL_FOLDER_ARTIFACT)
        for artifact in artifacts:
            artifact = Path(artifact)
            if artifact.is_dir():
                mlflow.log_artifacts(str(artifact), artifact_path=artifact.name)
            elif artifact.exists():
                mlflow.log_artifact(str(artifact))
        if keras_model is not None:
            import mlflow.keras

            signature = None if signature_example is None else keras_signature(keras_model, signature_example)
            info = mlflow.keras.log_model(keras_model, name="model", registered_model_name=config.registered_model,
                                          signature=signature)
            version = str(info.registered_model_version)
        else:
            # MLflow 3 resolves runs:/ URIs to LoggedModels only; register the folder's artifact URI.
            client = config.client()
            try:
                client.get_registered_model(config.registered_model)
            except Exception:  # noqa: BLE001 - first version of this project's model
                client.create_registered_model(config.registered_model)
            source = f"{run.info.artifact_uri.rstrip('/')}/{MODEL_FOLDER_ARTIFACT}"
            version = str(
                client.create_model_version(config.registered_model, source, run_id=run.info.run_id).version
            )
        run_id = run.info.run_id
    client = config.client()
    if run_name:
        client.update_run(run_id, name=f"v{version} · {run_name}")
    if description:
        client.update_model_version(config.registered_model, version, description=description)
    champion = update_champion(config, metric=champion_metric)
    if champion is not None:  # the metric decided (the promotion gate records its own outcome)
        record_outcome(config, version, *_metric_outcome(config, version, champion, champion_metric))
    return TrackedModel(
        run_id=run_id,
        experiment_id=experiment_id,
        version=version,
        run_url=config.run_url(experiment_id, run_id),
        champion_version=champion,
    )


def model_versions(config: TrackingConfig, metric: str = DEFAULT_CHAMPION_METRIC) -> pd.DataFrame:
    """One row per registered version: version, run_id, the metric, aliases, creation time."""
    client = config.client()
    rows = []
    for version in client.search_model_versions(f"name='{config.registered_model}'"):
        value = float("nan")
        if version.run_id:
            value = run_metric(client.get_run(version.run_id).data.metrics, metric)
        rows.append(
            {
                "version": str(version.version),
                "run_id": version.run_id,
                metric: value,
                # search results carry no aliases on some stores: ask for the version itself
                "aliases": ",".join(client.get_model_version(config.registered_model, version.version).aliases or []),
                "created_ms": int(version.creation_timestamp or 0),
            }
        )
    frame = pd.DataFrame(rows, columns=["version", "run_id", metric, "aliases", "created_ms"])
    return frame.sort_values("version", key=lambda s: s.astype(int)).reset_index(drop=True)


def update_champion(config: TrackingConfig, metric: str = DEFAULT_CHAMPION_METRIC) -> str | None:
    """Point the ``champion`` alias at the pinned version, else at the best version by ``metric``
    (ties go to the newer version). Returns the champion version, or ``None`` if none has the metric."""
    client = config.client()
    try:
        registered = client.get_registered_model(config.registered_model)
    except Exception:  # noqa: BLE001 - no model registered yet
        return None
    pinned = (registered.tags or {}).get(PINNED_TAG)
    if pinned:
        client.set_registered_model_alias(config.registered_model, CHAMPION_ALIAS, pinned)
        return pinned
    versions = model_versions(config, metric)
    versions = versions[versions[metric].map(_finite)]
    if versions.empty:
        return None
    best = versions.assign(v=versions["version"].astype(int)).sort_values([metric, "v"]).iloc[-1]
    client.set_registered_model_alias(config.registered_model, CHAMPION_ALIAS, best["version"])
    return str(best["version"])


def _metric_outcome(config: TrackingConfig, version: str, champion: str, metric: str) -> tuple[str, str]:
    """``(outcome, reason)`` of ``version`` when ``metric`` chose ``champion``."""
    versions = model_versions(config, metric).set_index("version")
    mine = versions[metric].get(version, math.nan)
    if champion == version:
        return "champion", (f"champion: version {version} has the best {metric} "
                            f"({_fmt(mine)}) of the registered versions")
    pinned = config.client().get_registered_model(config.registered_model).tags.get(PINNED_TAG)
    if pinned == champion:
        return "kept out", f"kept out: the champion is pinned to version {champion} by a person"
    return "kept out", (f"kept out: its {metric} {_fmt(mine)} is below champion version {champion}'s "
                        f"{_fmt(versions[metric].get(champion, math.nan))}")


def _fmt(value) -> str:
    return f"{float(value):.3f}" if _finite(value) else "undefined"


def record_outcome(config: TrackingConfig, version: str | int, outcome: str, reason: str) -> None:
    """Write a version's promotion outcome where MLflow shows it: the tags ``promotion`` and
    ``promotion_reason``, and a "Promotion" paragraph at the end of its description (replacing
    an earlier one)."""
    client = config.client()
    name, version = config.registered_model, str(version)
    client.set_model_version_tag(name, version, OUTCOME_TAG, outcome)
    client.set_model_version_tag(name, version, REASON_TAG, reason[:4900])
    description = client.get_model_version(name, version).description or ""
    description = description.split(PROMOTION_HEADING)[0].rstrip()
    client.update_model_version(name, version, description=(
        f"{description}\n\n{PROMOTION_HEADING} {reason}" if description else f"{PROMOTION_HEADING} {reason}"))



def pin_champion(config: TrackingConfig, version: str | int | None) -> str | None:
    """Pin ``version`` as champion (a person's choice overrides the metric); ``None`` unpins and
    lets the metric decide again. Returns the champion version afterwards."""
    client = config.client()
    if version is None:
        try:
            client.delete_registered_model_tag(config.registered_model, PINNED_TAG)
        except Exception:  # noqa: BLE001 - nothing pinned
            pass
        return update_champion(config)
    client.get_model_version(config.registered_model, str(version))  # raises for an unknown version
    client.set_registered_model_tag(config.registered_model, PINNED_TAG, str(version))
    return update_champion(config)


def champion_version(config: TrackingConfig):
    """The ModelVersion carrying the champion alias; :class:`TrackingError` if there is none."""
    client = config.client()
    try:
        return client.get_model_version_by_alias(config.registered_model, CHAMPION_ALIAS)
    except Exception as error:  # noqa: BLE001
        raise TrackingError(
            f"registered model {config.registered_model!r} at {config.tracking_uri} has no "
            f"{CHAMPION_ALIAS!r} version yet: train a model first (materialise trained_model)."
        ) from error


def download_model_folder(config: TrackingConfig, version: str | int, dst: str | os.PathLike) -> Path:
    """Download version ``version``'s ``trained_model`` folder into ``dst``; returns its path."""
    import mlflow

    client = config.client()
    model_version = client.get_model_version(config.registered_model, str(version))
    mlflow.set_tracking_uri(config.tracking_uri)
    path = mlflow.artifacts.download_artifacts(
        run_id=model_version.run_id, artifact_path=MODEL_FOLDER_ARTIFACT, dst_path=str(dst),
        tracking_uri=config.tracking_uri,
    )
    return Path(path)


def log_metrics_to_run(config: TrackingConfig, run_id: str, metrics: Mapping[str, float]) -> None:
    """Add metrics (e.g. congruence on the dense set) to an existing run."""
    client = config.client()
    for key, value in metrics.items():
        if _finite(value):
            client.log_metric(run_id, metric_key(key), float(value))


def describe(tracked: TrackedModel) -> str:
    return json.dumps(tracked.__dict__)


# ---------------------------------------------------------------------------------------------
# studies: a parent run per study, a nested child run per training (songexplorer_core.studies)

#: MLflow's own tag that nests a run under its parent in the UI.
PARENT_RUN_TAG = "mlflow.parentRunId"
#: Tag naming the kind of study (``xvalidate``, ``sweep``, ...) on the parent and its children.
STUDY_TAG = "songexplorer.study"


def _log_params_batched(client, run_id: str, params: Mapping) -> None:
    from mlflow.entities import Param

    flat = flatten_params(params)
    items = [Param(k, v[:6000]) for k, v in flat.items()]
    for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, params=items[start : start + 100])


def _log_metrics_batched(client, run_id: str, metrics: list) -> None:
    for start in range(0, len(metrics), 1000):  # and at most 1000 metrics
        client.log_batch(run_id, metrics=metrics[start : start + 1000])


def start_study_run(config: TrackingConfig, *, run_name: str, params: Mapping, tags: Mapping[str, str] | None = None
                    ) -> tuple[str, str]:
    """Open a study's parent run (left running until :func:`finish_study_run`); returns
    ``(run_id, experiment_id)``. Nothing is registered: a study never moves the champion."""
    client = config.client()
    experiment_id = _experiment_id(config)
    run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
    _log_params_batched(client, run.info.run_id, params)
    return run.info.run_id, experiment_id


def log_child_training(config: TrackingConfig, parent_run_id: str, *, run_name: str, params: Mapping,
                       history: pd.DataFrame | None, metrics: Mapping[str, float],
                       model_dir: str | os.PathLike | None = None, artifacts: list[str | os.PathLike] = (),
                       tags: Mapping[str, str] | None = None) -> str:
    """One training of a study as a finished child run of ``parent_run_id``: params (flattened
    as :func:`log_training_run` does, so MLflow's compare view lines them up), the per-step
    curves of ``history``, final ``metrics``, the model folder as the ``trained_model`` artifact
    (not registered) and further ``artifacts``. Returns the child's run id."""
    import time as _time

    from mlflow.entities import Metric

    client = config.client()
    parent = client.get_run(parent_run_id)
    run = client.create_run(parent.info.experiment_id, run_name=run_name,
                            tags={PARENT_RUN_TAG: parent_run_id, **dict(tags or {})})
    run_id = run.info.run_id
    try:
        _log_params_batched(client, run_id, params)
        now = int(_time.time() * 1000)
        entries = []
        if history is not None and len(history):
            for column in history.columns:
                if column == "step" or not pd.api.types.is_numeric_dtype(history[column]):
                    continue
                entries += [Metric(metric_key(column), float(v), now, int(s))
                            for s, v in zip(history["step"], history[column]) if _finite(v)]
        # the same keys as log_training_run's, so children and trainings compare side by side
        entries += [Metric(metric_key(k), float(v), now, 0) for k, v in metrics.items() if _finite(v)]
        _log_metrics_batched(client, run_id, entries)
        if model_dir is not None:
            client.log_artifacts(run_id, str(model_dir), artifact_path=MODEL_FOLDER_ARTIFACT)
        for artifact in artifacts:
            artifact = Path(artifact)
            if artifact.is_dir():
                client.log_artifacts(run_id, str(artifact), artifact_path=artifact.name)
            elif artifact.exists():
                client.log_artifact(run_id, str(artifact))
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id


def finish_study_run(config: TrackingConfig, run_id: str, *, metrics: Mapping[str, float] | None = None,
                     artifacts: list[str | os.PathLike] = (), artifact_path: str | None = None,
                     status: str = "FINISHED") -> None:
    """Log the study's summary ``metrics`` and ``artifacts`` (tables, comparison plots) on its
    parent run and close it with ``status``."""
    import time as _time

    from mlflow.entities import Metric

    client = config.client()
    now = int(_time.time() * 1000)
    _log_metrics_batched(client, run_id, [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()
                                          if _finite(v)])
    for artifact in artifacts:
        if Path(artifact).exists():
            client.log_artifact(run_id, str(artifact), artifact_path=artifact_path)
    client.set_terminated(run_id, status=status)


def child_runs(config: TrackingConfig, parent_run_id: str) -> pd.DataFrame:
    """``mlflow.search_runs`` of the parent's experiment filtered on the parent's id: one row per
    child, with its ``params.*`` and ``metrics.*`` columns."""
    import mlflow

    client = config.client()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    mlflow.set_tracking_uri(config.tracking_uri)
    return mlflow.search_runs(experiment_ids=[experiment_id],
                              filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'")
