"""Every resource of the code location: the classes and the one binding of them.

* ``project`` (:class:`ProjectResource`): the project folder; every path comes from its core
  ``Project`` (``songexplorer_core.project``), so tests point the graph at a temporary project
  with ``ProjectResource(root=str(tmp_path))``.
* ``mlflow`` (:class:`MlflowResource`): where training runs and registered models go, and the
  champion's download. Deliberately not dagster-mlflow, which pins pandas < 3 (dagster#33325).
  By default the tracking store is SQLite inside the project (``<project>/mlflow/``), what
  README command 1's MLflow UI serves; ``$MLFLOW_TRACKING_URI`` or ``tracking_uri`` names a shared
  server instead (docs/deploy.md).
* ``compute`` (:class:`ComputeResource`): CPU or GPU and TensorFlow's threads. On Kubernetes
  (``SONGEXPLORER_EXECUTOR=k8s``) each step's pod asks for the CPU, memory and GPUs that
  ``songexplorer_dagster.compute_resources`` reads from the project's ``[resources]`` tables.
* ``dense_set`` (:class:`DenseSetResource`): which recordings are densely annotated and how a
  model is measured on them, shared by ``congruence_report`` and the promotion gate so both
  always agree. A recording is dense when it has a ``<wav>-annotated-<name>.csv`` by one of the
  ``dense_annotators`` (people are named, not recordings: dense annotation is a job someone does
  on purpose, while the same recording may carry others' sparse labels); they are named here,
  else by ``$SONGEXPLORER_DENSE_ANNOTATORS``, else by the project's ``songexplorer.toml``. Dense
  annotations are a test set, kept out of training by default (``held_out_of_training``);
  ``"none"`` trains on them as SongExplorer did.
* ``ethogram`` (:class:`EthogramResource`): how probabilities become ethograms, shared by
  ``ethograms`` and the promotion gate, so the champion is judged on the ethograms people get.
"""

import os
import shutil
from pathlib import Path
from typing import Literal

import dagster as dg
import pandas as pd
from pydantic import Field, field_validator

from songexplorer_core.dense_set import DenseSettings
from songexplorer_core.project import Project, ProjectSettings, find_recordings, project_from_env, recording_path
from songexplorer_core.promotion import DEFAULT_TOLERANCE
from songexplorer_core.tracking import TrackingConfig

# -- project --------------------------------------------------------------------------------

def default_project_root() -> str:
    """``$SONGEXPLORER_PROJECT``, else ``./songexplorer-project``, as an absolute path."""
    return str(project_from_env().root)


class ProjectResource(dg.ConfigurableResource):
    """A songexplorer-dagster project folder: ``groundtruth/`` (recordings, read only),
    ``outputs/`` (everything derived) and ``songexplorer.toml`` (rate and channels).

    Every path under ``outputs/`` is a method of the core :class:`Project` that :meth:`project`
    returns (``project.project().detections_path(key)``, ...): the layout is written once.
    """

    root: str = Field(
        default_factory=default_project_root,
        description=(
            "Project folder. Defaults to the SONGEXPLORER_PROJECT environment variable, "
            "else ./songexplorer-project (resolved when the code location loads)."
        ),
    )

    audio_reader: str = Field(
        default="",
        description="Audio reader by name (a plug-in of songexplorer.audio_readers: `songexplorer plugins`); empty: "
                    "the project's songexplorer.toml (audio_reader), else by each file's suffix.",
    )
    audio_highpass_hz: float | None = Field(
        default=None, description="High-pass filter cut-off, Hz (0: none); empty: the project's songexplorer.toml.")

    def project(self) -> Project:
        """The core :class:`~songexplorer_core.project.Project` for ``root``."""
        return Project(Path(self.root).expanduser().resolve())

    def use_audio(self):
        """Put the project's audio settings in force in this process (songexplorer.toml, with this
        resource's ``audio_reader`` / ``audio_highpass_hz`` where given); returns them."""
        return self.project().use_audio(reader=self.audio_reader or None, highpass_hz=self.audio_highpass_hz)

    def setup_for_execution(self, context) -> None:
        """Every step reads recordings with the project's readers, filter and channel map.

        A bad ``songexplorer.toml`` is left to the step that reads it: failing here would end the
        run as a resource failure, without the step's one-line message naming the file."""
        from songexplorer_core.errors import is_expected

        try:
            self.use_audio()
        except Exception as error:
            if not is_expected(error):
                raise

    def settings(self) -> ProjectSettings:
        """The project's ``songexplorer.toml`` (audio_tic_rate in Hz, audio_nchannels)."""
        return self.project().settings()

    def find_recordings(self) -> dict[str, Path]:
        """Every recording under ``groundtruth/``: ``{key: absolute path}``, sorted by key
        (hidden, temporary and ``oldfiles-*``/``congruence-*`` files skipped); a file the channel map
        splits gives one recording per name (``songexplorer_core.audio_readers.expand_recordings``)."""
        return find_recordings(self.project().groundtruth, self.use_audio())

    def recording_path(self, key: str) -> Path:
        """Absolute path of the recording with partition key ``key``.

        Raises:
            songexplorer_core.project.ProjectError: if the key is malformed or resolves
                outside ``groundtruth/``.
        """
        return recording_path(self.project(), key)

# -- mlflow --------------------------------------------------------------------------------

def _default_ui_url() -> str:
    return os.environ.get("SONGEXPLORER_MLFLOW_UI", "http://127.0.0.1:5000")


#: ``$MLFLOW_TRACKING_URI`` as the process started with it. Read once, at import: MLflow's own
#: ``set_tracking_uri`` (``songexplorer_core.tracking`` calls it for each project) writes that
#: variable, so reading it later would hand one project's store to the next resource made here.
_LAUNCH_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or None


def _default_tracking_uri() -> str | None:
    """``$MLFLOW_TRACKING_URI`` when the process started (MLflow's own variable: on a cluster the
    pods need only it), else ``None``: the project's SQLite store."""
    return _LAUNCH_TRACKING_URI


def _default_dagster_ui_url() -> str:
    return os.environ.get("SONGEXPLORER_DAGSTER_UI") or "http://127.0.0.1:3000"


class MlflowResource(dg.ConfigurableResource):
    """Where every trained model is logged (one experiment and one registered model per project)."""

    tracking_uri: str | None = Field(
        default_factory=_default_tracking_uri,
        description="MLflow tracking URI (MLFLOW_TRACKING_URI, e.g. a shared server http://mlflow:5000); "
                    "empty means SQLite inside the project (<project>/mlflow/mlflow.db).",
    )
    experiment: str = Field(default="songexplorer", description="Experiment holding every training run.")
    registered_model: str = Field(
        default="songexplorer", description="Registered model whose versions are the trained models."
    )
    ui_url: str = Field(
        default_factory=_default_ui_url,
        description="Address of the MLflow UI, for links in asset metadata (SONGEXPLORER_MLFLOW_UI).",
    )
    dagster_ui_url: str = Field(
        default_factory=_default_dagster_ui_url,
        description="Address of the Dagster UI, for the link from each MLflow run back to the Dagster run that "
                    "made it (SONGEXPLORER_DAGSTER_UI).",
    )

    def dagster_run_url(self, run_id: str) -> str:
        """The Dagster UI's page of run ``run_id``."""
        return f"{self.dagster_ui_url.rstrip('/')}/runs/{run_id}"

    def tracking(self, project_root: str | os.PathLike) -> TrackingConfig:
        """The tracking configuration for the project at ``project_root``."""
        overrides = {"experiment": self.experiment, "registered_model": self.registered_model, "ui_url": self.ui_url}
        if self.tracking_uri:
            return TrackingConfig(tracking_uri=self.tracking_uri, **overrides)
        return TrackingConfig.for_project_dir(Path(project_root) / "mlflow", **overrides)

    def champion_bundle(self, project: Project) -> tuple[str, Path]:
        """``(version, folder)`` of the champion model, downloaded once into
        ``outputs/models/registry/v<version>/`` (``project``: the core ``Project``)."""
        from songexplorer_core.tracking import champion_version, download_model_folder

        tracking = self.tracking(project.root)
        version = str(champion_version(tracking).version)
        folder = project.registry_model_dir(version)
        if not (folder / "model.json").exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = folder.with_name(f".v{version}.download")
            if staging.exists():
                shutil.rmtree(staging)
            downloaded = download_model_folder(tracking, version, staging)
            downloaded.rename(folder) if downloaded != staging else staging.rename(folder)
        return version, folder

# -- compute --------------------------------------------------------------------------------

class ComputeResource(dg.ConfigurableResource):
    """How training and classification steps use the machine."""

    device: Literal["auto", "cpu", "gpu"] = Field(
        default="auto", description="'auto': a GPU if visible, else the CPU; 'cpu'; or 'gpu' (fail without one)."
    )
    threads: int | None = Field(
        default=None, description="TensorFlow intra-op threads; empty = every core."
    )

    def configure(self, log=None):
        """Apply the settings (before TensorFlow does any work); returns what was chosen."""
        from songexplorer_core.compute import configure_compute  # TensorFlow: only in the step

        info = configure_compute(self.device, self.threads)
        if log is not None:
            log.info(f"compute: {info}")
        return info

# -- dense_set --------------------------------------------------------------------------------

DENSE_ANNOTATORS_ENV = "SONGEXPLORER_DENSE_ANNOTATORS"


def default_dense_annotators() -> list[str]:
    """``$SONGEXPLORER_DENSE_ANNOTATORS`` split at commas (empty: no dense set)."""
    return [name.strip() for name in os.environ.get(DENSE_ANNOTATORS_ENV, "").split(",") if name.strip()]


class DenseSetResource(dg.ConfigurableResource):
    """The densely annotated recordings and the congruence settings (SongExplorer's names)."""

    dense_annotators: list[str] = Field(
        default_factory=default_dense_annotators,
        description=(
            "Annotators whose <wav>-annotated-<name>.csv files are dense annotations, e.g. ['person2']. "
            "Empty: $SONGEXPLORER_DENSE_ANNOTATORS (comma-separated), else the project's songexplorer.toml "
            "dense_annotators; none anywhere: no dense set (the congruence report compares nothing, the promotion "
            "gate is skipped)."
        ),
    )
    dense_recordings: list[str] = Field(
        default=[],
        description="Only these recording keys (e.g. 'round2%2FPS.wav'); empty = every recording they annotated.",
    )
    portion: Literal["union", "intersection"] = Field(default="union",
                         description="'union' or 'intersection' of the annotators' annotated spans.")
    convolve_s: float = Field(
        default=0.0, description="Tolerance, seconds: every interval is widened by this/2 at both ends first."
    )
    span: Literal["annotations", "label"] = Field(
        default="annotations",
        description="'annotations': a recording's annotated stretch spans every label; 'label': per label "
                    "(SongExplorer).",
    )
    absent_annotators: Literal["empty", "skip"] = Field(
        default="empty",
        description="'empty': an annotator with nothing in a recording marked nothing there; 'skip': compare "
                    "each recording among the people who annotated it.",
    )
    measure: Literal["label", "tic"] = Field(
        default="label",
        description="Level of the headline scores and of the gate: 'label' (events) or 'tic' (samples).",
    )
    reference: str = Field(
        default="songexplorer",
        description="Whose marks are the truth: 'songexplorer' (SongExplorer's definition), an annotator's name, "
                    "'union' or 'intersection'.",
    )
    nprobabilities: int = Field(default=20, description="Thresholds in the report's sweep (0 = no sweep).")
    error_ratio: float = Field(default=1.0, description="Precision/recall ratio of the dense thresholds.")
    ratio: str = Field(
        default="",
        description="Which P/R ratio's ethogram to score (e.g. '1.0pr'); empty = the model's first.",
    )
    promotion_tolerance: float = Field(
        default=DEFAULT_TOLERANCE,
        description="The gate refuses a new model whose F1 on any label of the dense set is lower than the "
                    "champion's by more than this (0.02 = two points).",
    )

    held_out_of_training: Literal["annotations", "recordings", "none"] = Field(
        default="annotations",
        description="What ground_truth keeps out of training: 'annotations' (the dense annotators' files of the "
                    "dense recordings), 'recordings' (every annotation of the dense recordings, anyone's), or "
                    "'none' (dense annotations train too, as in SongExplorer: scores then measure fit, not "
                    "generalisation).",
    )

    def annotators(self, project) -> list[str]:
        """The dense annotators: this resource's, else the project's ``songexplorer.toml``'s
        (``project``: a ``ProjectResource``)."""
        if self.dense_annotators:
            return list(self.dense_annotators)
        return list(project.settings().dense_annotators)

    def is_configured(self, project) -> bool:
        """Whether any dense annotator is named (here or in the project's settings)."""
        return bool(self.annotators(project))

    def held_out(self, annotations: pd.DataFrame, project) -> pd.Series:
        """Which rows of an annotation table (columns ``annotator`` and ``recording``, the
        recording key) ``ground_truth`` keeps out of training, by ``held_out_of_training``."""
        names = set(self.annotators(project))
        if self.held_out_of_training == "none" or not names or not len(annotations):
            return pd.Series(False, index=annotations.index)
        dense_rows = annotations["annotator"].isin(names)
        if self.dense_recordings:
            dense_rows &= annotations["recording"].isin(set(self.dense_recordings))
        if self.held_out_of_training == "annotations":
            return dense_rows
        return annotations["recording"].isin(set(annotations.loc[dense_rows, "recording"]))

    def settings(self, project) -> DenseSettings:
        """These settings for core (``songexplorer_core.dense_set``), the annotators resolved
        (``project``: a ``ProjectResource``)."""
        return DenseSettings(
            annotators=tuple(self.annotators(project)), dense_recordings=tuple(self.dense_recordings),
            portion=self.portion, convolve_s=float(self.convolve_s), span=self.span,
            absent_annotators=self.absent_annotators, measure=self.measure, reference=self.reference,
            nprobabilities=self.nprobabilities, error_ratio=self.error_ratio, ratio=self.ratio,
            promotion_tolerance=self.promotion_tolerance)

# -- ethogram --------------------------------------------------------------------------------

class EthogramResource(dg.ConfigurableResource):
    """How probabilities become ethograms (``songexplorer_core.ethogram.model_ethogram``): the method,
    short range slivers dropped, and one event per pulse."""

    method: str = Field(
        default="auto",
        description=("'auto' (default): each tic gets its most probable label for exclusive models, per-label "
                     "thresholds for overlapped ones; 'maxprob'; or 'threshold' (SongExplorer's default: the "
                     "model's thresholds at each precision/recall ratio). Why auto: docs/recipe.md. Or the name of "
                     "an installed ethogram plug-in (songexplorer.ethograms: `songexplorer plugins`)."),
    )

    @field_validator("method")
    @classmethod
    def _installed_method(cls, value: str) -> str:
        """A method that is neither built in nor installed fails the run at its start, naming those there are."""
        from songexplorer_core.ethogram import check_method

        return check_method(value)
    min_segment_fraction: float = Field(
        default=0.5, ge=0.0,
        description=("Predicted intervals of a label annotated only with ranges (sine, syllables) shorter than this "
                     "fraction of its shortest annotated range are dropped; 0 keeps them all (SongExplorer)."),
    )
    event_refractory_fraction: float = Field(
        default=0.5, ge=0.0,
        description=("A label annotated only with points (pulses) gives one event per peak of its probability; peaks "
                     "closer than this fraction of the shortest gap between two annotated points (at most 20 ms) are "
                     "one event. 0: one interval per run of samples (SongExplorer). Why: docs/recipe.md."),
    )
    event_min_peak: float = Field(
        default=0.7, ge=0.0, le=1.0,
        description="Those events need their probability to peak at least this high (docs/recipe.md).",
    )

    def settings(self) -> dict:
        """The settings as keyword arguments of ``ethogram.run_ethogram`` / ``model_ethogram``."""
        return {"method": self.method, "min_segment_fraction": self.min_segment_fraction,
                "event_refractory_fraction": self.event_refractory_fraction, "event_min_peak": self.event_min_peak}


@dg.definitions
def resources() -> dg.Definitions:
    """The resources every asset, sensor and job of the code location gets."""
    return dg.Definitions(resources={
        "project": ProjectResource(), "mlflow": MlflowResource(), "compute": ComputeResource(),
        "dense_set": DenseSetResource(), "ethogram": EthogramResource(),
    })
