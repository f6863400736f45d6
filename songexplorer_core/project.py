"""A songexplorer-dagster project folder.

::

    <project>/
      songexplorer.toml     settings shared by every step (audio_tic_rate, audio_nchannels,
                            dense_annotators, annotation_formats)
      groundtruth/          a SongExplorer ground-truth folder: WAVs and their CSVs, any depth.
                            Read, never modified or deleted, except the annotator's own
                            -annotated-<name>.csv files.
      outputs/              everything derived (detections, models, probabilities, ...)
      dagster_home/         the Dagster instance (SQLite storage, logs, dagster.yaml)
      mlflow/               MLflow tracking store and artifacts
      run/                  files of running services, private to their user (mode 0700): the
                            annotator's address with its access token (``annotator-url``)

The project is chosen by ``SONGEXPLORER_PROJECT`` (default ``./songexplorer-project``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from songexplorer_core.annotations import IGNORED_FOLDER
from songexplorer_core.atomic import atomic_write, is_temporary
from songexplorer_core.audio import RecordingError, is_recording, recording_info
from songexplorer_core.audio_readers import AudioSettings, configure_audio, expand_recordings

PROJECT_ENV = "SONGEXPLORER_PROJECT"
DEFAULT_PROJECT_DIR = "songexplorer-project"
SETTINGS_FILE = "songexplorer.toml"
DEFAULT_TIC_RATE = 2500
#: Tables of ``songexplorer.toml`` read elsewhere: ``[resources.<step>]``, what each step's pod asks
#: a cluster for (``songexplorer_dagster.compute_resources``, docs/deploy.md).
OTHER_SETTINGS = ("resources",)


class ProjectError(ValueError):
    """The project folder is missing or inconsistent; the message says how to fix it."""


@dataclass(frozen=True)
class ProjectSettings:
    """Settings every step agrees on (SongExplorer's configuration.py)."""

    audio_tic_rate: int = DEFAULT_TIC_RATE  #: Hz; every recording must have this rate
    audio_nchannels: int = 1  #: every recording must have this many channels
    #: annotators whose ``<wav>-annotated-<name>.csv`` files are dense annotations (the test set
    #: of congruence and of the promotion gate); empty: none
    dense_annotators: tuple[str, ...] = ()
    #: other tools' annotation formats the project works in (``raven``, ``audacity``, ``textgrid``,
    #: ``das``; docs/formats.md): ethograms are also written in them, and annotation files in them
    #: beside the recordings in ``groundtruth/`` are read as annotations; empty: none
    annotation_formats: tuple[str, ...] = ()
    #: how recordings are read (``audio_reader``, ``audio_reader_options``, ``audio_highpass_hz``,
    #: ``audio_highpass_order``, ``audio_channel_map`` in songexplorer.toml;
    #: ``songexplorer_core.audio_readers``)
    audio: AudioSettings = AudioSettings()


#: songexplorer.toml's keys for :class:`AudioSettings` (SongExplorer's ``audio_read_plugin`` and kwargs).
AUDIO_KEYS = {"audio_reader": "reader", "audio_reader_options": "options", "audio_highpass_hz": "highpass_hz",
              "audio_highpass_order": "highpass_order", "audio_channel_map": "channel_map"}


@dataclass(frozen=True)
class Project:
    """Paths of a project folder; see the module docstring for the layout."""

    root: Path

    @property
    def groundtruth(self) -> Path:
        return self.root / "groundtruth"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def runtime_dir(self) -> Path:
        """``run/``: files of the running services, private to the user who started them."""
        return self.root / "run"

    @property
    def annotator_url_path(self) -> Path:
        """``run/annotator-url``: the running annotator's address with its access token, one line
        (``http://127.0.0.1:5006/annotate?token=...``), mode 0600; ``songexplorer annotate`` writes
        it when it starts and removes it when it stops (docs/annotator.md)."""
        return self.runtime_dir / "annotator-url"

    @property
    def settings_path(self) -> Path:
        return self.root / SETTINGS_FILE

    def settings(self) -> ProjectSettings:
        """Read ``songexplorer.toml`` (defaults where absent)."""
        if not self.settings_path.exists():
            return ProjectSettings()
        try:
            data = tomllib.loads(self.settings_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ProjectError(f"{self.settings_path}: not valid TOML ({error}).") from error
        allowed = ([f.name for f in dataclasses.fields(ProjectSettings) if f.name != "audio"] + list(OTHER_SETTINGS)
                   + list(AUDIO_KEYS))
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ProjectError(f"{self.settings_path}: unknown setting(s) {unknown}; the settings are {allowed}")
        known = {}
        for key in ("audio_tic_rate", "audio_nchannels"):
            if key not in data:
                continue
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ProjectError(f"{self.settings_path}: {key} must be a whole number >= 1 "
                                   f"({'Hz' if key == 'audio_tic_rate' else 'channels'}), not {value!r}")
            known[key] = value
        if "dense_annotators" in data:
            names = data["dense_annotators"]
            if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
                raise ProjectError(f"{self.settings_path}: dense_annotators must be a list of annotator names, "
                                   f'e.g. dense_annotators = ["person2"], not {names!r}')
            known["dense_annotators"] = tuple(n.strip() for n in names)
        if "annotation_formats" in data:
            from songexplorer_core.formats import FORMATS, FormatError, check_format_names

            names = data["annotation_formats"]
            try:
                if not isinstance(names, list):
                    raise FormatError("not a list")
                known["annotation_formats"] = check_format_names(names)
            except FormatError as error:
                raise ProjectError(f"{self.settings_path}: annotation_formats must be a list of format names out of "
                                   f"{list(FORMATS)}, e.g. annotation_formats = [\"raven\", \"textgrid\"], not "
                                   f"{names!r}") from error
        audio = {AUDIO_KEYS[key]: data[key] for key in AUDIO_KEYS if key in data}
        if audio:
            try:
                known["audio"] = AudioSettings.make(**audio, where=str(self.settings_path))
            except (RecordingError, TypeError) as error:
                raise ProjectError(str(error)) from error
        return ProjectSettings(**known)

    def use_audio(self, **overrides) -> AudioSettings:
        """Put this project's audio settings in force (``songexplorer_core.audio_readers.configure_audio``),
        with ``overrides`` (keys of ``AudioSettings.make``: ``reader``, ``highpass_hz``, ...) replacing
        songexplorer.toml's where given (not ``None``). Returns them."""
        audio = self.settings().audio
        chosen = {"reader": audio.reader, "options": dict(audio.options), "highpass_hz": audio.highpass_hz,
                  "highpass_order": audio.highpass_order, "channel_map": dict(audio.channel_map)}
        chosen.update({key: value for key, value in overrides.items() if value is not None})
        return configure_audio(AudioSettings.make(**chosen, where=str(self.settings_path)))

    def output_dir(self, name: str) -> Path:
        """``outputs/<name>``, created if needed."""
        path = self.outputs / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- the outputs layout: every path under outputs/ is named here, once --------------------
    #
    # ``K`` is a recording key (:func:`recording_key`); ``<dir>/<wav>`` is its path under
    # ``groundtruth/``. SongExplorer-format files mirror ``groundtruth/``'s folders.

    def recording_record_path(self, key: str) -> Path:
        """``outputs/recordings/K.json``: what recording ``key``'s header said when it was checked."""
        return self.outputs / "recordings" / f"{checked_key(key)}.json"

    def detections_path(self, key: str) -> Path:
        """``outputs/detections/K.parquet``: recording ``key``'s detected intervals."""
        return self.outputs / "detections" / f"{checked_key(key)}.parquet"

    def detected_csv_path(self, key: str) -> Path:
        """``outputs/detected/<dir>/<wav>-detected.csv``: SongExplorer's name and folder structure
        (``round1%2FPS.wav`` -> ``detected/round1/PS.wav-detected.csv``)."""
        relative = recording_relpath(key)
        return self.outputs / "detected" / relative.parent / f"{relative.name}-detected.csv"

    def annotations_path(self, key: str) -> Path:
        """``outputs/annotations/K.parquet``: every annotator's intervals of recording ``key``."""
        return self.outputs / "annotations" / f"{checked_key(key)}.parquet"

    @property
    def ground_truth_path(self) -> Path:
        """``outputs/ground_truth/ground_truth.parquet``: the annotations training reads."""
        return self.outputs / "ground_truth" / "ground_truth.parquet"

    @property
    def held_out_path(self) -> Path:
        """``outputs/ground_truth/held_out.parquet``: dense annotations kept out of training."""
        return self.outputs / "ground_truth" / "held_out.parquet"

    @property
    def ground_truth_recordings_path(self) -> Path:
        """``outputs/ground_truth/recordings.json``: ``{recording key: path}`` of the ground truth."""
        return self.outputs / "ground_truth" / "recordings.json"

    @property
    def models_dir(self) -> Path:
        """``outputs/models/``: one folder per training (``<UTC stamp>/``)."""
        return self.outputs / "models"

    @property
    def latest_model_path(self) -> Path:
        """``outputs/models/latest.json``: what the last training produced."""
        return self.models_dir / "latest.json"

    def registry_model_dir(self, version: str | int) -> Path:
        """``outputs/models/registry/v<version>/``: a registered model version, downloaded."""
        return self.models_dir / "registry" / f"v{version}"

    def probabilities_dir(self, key: str) -> Path:
        """``outputs/probabilities/<dir>/``: recording ``key``'s probabilities (npz and WAVs)."""
        return self.outputs / "probabilities" / recording_relpath(key).parent

    def probabilities_npz(self, key: str) -> Path:
        """``outputs/probabilities/<dir>/<wav>-probabilities.npz``."""
        from songexplorer_core.classify import probabilities_npz_name  # the name core's classify gives it

        return self.probabilities_dir(key) / probabilities_npz_name(recording_relpath(key).name)

    def probabilities_source_path(self, key: str) -> Path:
        """``outputs/probabilities/<dir>/<wav>-probabilities.json``: which model made them
        (``model_version``, ``bundle``) from which recording (size, mtime)."""
        return self.probabilities_npz(key).with_suffix(".json")

    def predicted_dir(self, key: str) -> Path:
        """``outputs/predicted/<dir>/``: ``<wav>-predicted-<ratio>pr.csv`` and ``<wav>-ethogram.log``."""
        return self.outputs / "predicted" / recording_relpath(key).parent

    def ethogram_path(self, key: str) -> Path:
        """``outputs/ethograms/K.parquet``: predicted intervals of every P/R ratio (column ``ratio``)."""
        return self.outputs / "ethograms" / f"{checked_key(key)}.parquet"

    def ethogram_plot_path(self, key: str) -> Path:
        """``outputs/ethograms/K.png``: the ethogram of recording ``key`` drawn."""
        return self.ethogram_path(key).with_suffix(".png")

    def misses_path(self, key: str) -> Path:
        """``outputs/misses/K.parquet``: recording ``key``'s missed stretches."""
        return self.outputs / "misses" / f"{checked_key(key)}.parquet"

    def missed_dir(self, key: str) -> Path:
        """``outputs/missed/<dir>/``: where ``<wav>-missed.csv`` goes."""
        return self.outputs / "missed" / recording_relpath(key).parent

    @property
    def mistakes_dir(self) -> Path:
        """``outputs/mistakes/``: ``<dir>/<wav>-mistakes.csv`` and ``mistakes.parquet``."""
        return self.outputs / "mistakes"

    @property
    def mistakes_path(self) -> Path:
        """``outputs/mistakes/mistakes.parquet``."""
        return self.mistakes_dir / "mistakes.parquet"

    @property
    def activations_path(self) -> Path:
        """``outputs/activations/activations.npz``."""
        return self.outputs / "activations" / "activations.npz"

    @property
    def cluster_dir(self) -> Path:
        """``outputs/cluster/``: ``cluster.parquet`` (the annotator's; ``annotator.cluster``),
        ``cluster-layers.parquet`` and ``cluster.png``."""
        return self.outputs / "cluster"

    @property
    def cluster_path(self) -> Path:
        """``outputs/cluster/cluster.parquet``: one layer's embedding, what the annotator shows
        (the same file as ``songexplorer_core.cluster.cluster_path(outputs)``, which the annotator
        uses with the outputs folder alone; tests/dagster/test_dagster_definitions.py holds them equal)."""
        return self.cluster_dir / "cluster.parquet"

    @property
    def cluster_layers_path(self) -> Path:
        """``outputs/cluster/cluster-layers.parquet``: every embedded layer."""
        return self.cluster_dir / "cluster-layers.parquet"

    @property
    def cluster_plot_path(self) -> Path:
        """``outputs/cluster/cluster.png``."""
        return self.cluster_dir / "cluster.png"

    @property
    def summaries_dir(self) -> Path:
        """``outputs/summaries/``."""
        return self.outputs / "summaries"

    def congruence_dir(self, version: str | int) -> Path:
        """``outputs/congruence/v<version>/``: the congruence report of one model version."""
        return self.outputs / "congruence" / f"v{version}"


def project_from_env(default: str | os.PathLike | None = None) -> Project:
    """The project named by ``SONGEXPLORER_PROJECT`` (or ``default``, or ./songexplorer-project)."""
    root = os.environ.get(PROJECT_ENV) or default or DEFAULT_PROJECT_DIR
    return Project(Path(root).expanduser().resolve())


# --------------------------------------------------------------------------------------------
# recordings and their partition keys


def recording_key(relative_path: str | os.PathLike) -> str:
    """A stable key for a recording from its path relative to ``groundtruth/``.

    Safe as a file name and as a Dagster partition key: ``/`` becomes ``%2F`` and ``%``
    becomes ``%25`` (a reversible encoding), so ``round1/PS.wav`` -> ``round1%2FPS.wav`` and a
    recording at the top level keeps its own name.
    """
    text = Path(relative_path).as_posix()
    if text.startswith("/") or ".." in Path(text).parts:
        raise ProjectError(f"{relative_path}: recording paths must be relative to groundtruth/ and stay inside it")
    return text.replace("%", "%25").replace("/", "%2F")


def recording_relpath(key: str) -> Path:
    """Inverse of :func:`recording_key`: the recording's path relative to ``groundtruth/``."""
    relative = Path(key.replace("%2F", "/").replace("%25", "%"))
    if relative.is_absolute() or ".." in relative.parts:
        raise ProjectError(f"{key!r} is not a recording key")
    return relative


def checked_key(key: str) -> str:
    """``key`` if it is a recording key that is safe as one file name (no ``/``, ``..``), else
    :class:`ProjectError`."""
    recording_relpath(key)  # refuses absolute keys and ".."
    if "/" in key or key in ("", ".", ".."):
        raise ProjectError(f"{key!r} is not a recording key (keys never contain '/')")
    return key


def find_recordings(groundtruth: str | os.PathLike, audio: AudioSettings | None = None) -> dict[str, Path]:
    """All recordings under a ground-truth folder, ``{key: absolute path}``, sorted by key: every
    audio file an installed reader takes, a file the channel map splits giving one recording per
    name (``rig.wav`` -> keys ``rig.wav-left``, ``rig.wav-right``, paths ``<folder>/rig.wav-left``...:
    ``songexplorer_core.audio_readers.expand_recordings``; ``audio``: the settings to use, default
    those in force).

    Skips hidden and temporary files and ``oldfiles-*``/``congruence-*`` folders.
    """
    root = Path(groundtruth)
    if not root.is_dir():
        return {}
    found = {_key(relative): Path(path) for relative, path in _recording_files(root)}
    return expand_recordings(found, audio)


def _recording_files(root: Path) -> list[tuple[str, str]]:
    """``(path relative to root, absolute path)`` of every recording file under ``root``, in path
    order: hidden and temporary files skipped, ``oldfiles-*``/``congruence-*`` folders not
    entered, symlinked folders not followed. One ``scandir`` per folder (a file's type comes with
    its name) and strings, not a ``Path`` per file until the end: a sensor lists 10,000 files every
    tick (``rglob`` and ``relative_to`` took ~2 s of it at load 8)."""
    found = []
    folders = [("", os.fspath(root))]
    while folders:
        prefix, folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if not IGNORED_FOLDER.match(entry.name):
                    folders.append((prefix + entry.name + "/", entry.path))
            elif is_recording(entry.name) and not is_temporary(entry.name) and entry.is_file():
                found.append((prefix + entry.name, entry.path))
    found.sort(key=lambda pair: pair[0].split("/"))
    return found


def _key(relative: str) -> str:
    """:func:`recording_key` of a relative path the walk found (no ``..``, never absolute)."""
    return relative.replace("%", "%25").replace("/", "%2F")


def recording_path(project: Project, key: str) -> Path:
    """The absolute path of recording ``key``, refusing anything outside ``groundtruth/``."""
    path = (project.groundtruth / recording_relpath(key)).resolve()
    root = project.groundtruth.resolve()
    if root not in path.parents:
        raise ProjectError(f"{key!r} resolves outside {root}")
    return path


# --------------------------------------------------------------------------------------------
# creating projects


def concurrent_runs(cpus: int | None = None) -> int:
    """Runs the Dagster queue lets run at once on a machine of ``cpus`` cores (default: this
    one's, ``os.cpu_count()``): half the cores, at least 2 and at most 16. A run of many
    recordings (``songexplorer_dagster.batches``) keeps a core or more busy (TensorFlow's steps
    use every core), so more runs than that only thrash, and SQLite's locks suffer beyond it."""
    cpus = cpus if cpus is not None else (os.cpu_count() or 2)
    return max(2, min(16, int(cpus) // 2))


def instance_template(cpus: int | None = None) -> str:
    """The Dagster instance settings a new project's ``dagster_home/dagster.yaml`` starts from:
    ``songexplorer_core/templates/dagster.yaml``, package data (the repo-root ``dagster.yaml`` is a
    link to it, for ``dagster dev`` run from a checkout without ``DAGSTER_HOME``), with the run
    queue's ``max_concurrent_runs`` chosen for a machine of ``cpus`` cores (default: this one's;
    :func:`concurrent_runs`)."""
    text = (resources.files("songexplorer_core") / "templates" / "dagster.yaml").read_text(encoding="utf-8")
    return re.sub(r"(?m)^(\s*max_concurrent_runs:)\s*\d+", rf"\g<1> {concurrent_runs(cpus)}", text, count=1)


_POOL_LIMIT = re.compile(r"^(concurrency:\n(?:[ \t]+.*\n|[ \t]*#.*\n)*?[ \t]+pools:\n(?:[ \t]*#.*\n)*[ \t]+default_limit:[ \t]*)(\d+)",
                         re.MULTILINE)


def _check_gpus(gpus: int) -> None:
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ProjectError(f"--gpus must be a whole number of GPUs >= 1, not {gpus!r} (on a machine without a "
                           f"GPU keep 1: GPU steps then run one at a time on the CPU)")


def set_gpu_limit(project: Project, gpus: int) -> None:
    """Let ``gpus`` steps of the ``gpu`` pool (training, classification) run at once: the pool
    limit (``concurrency: pools: default_limit``) of the project's ``dagster_home/dagster.yaml``,
    rewritten in place (comments kept). One per GPU: a second step on a card would run out of
    its memory. Dagster reads it when the daemon or a run starts."""
    _check_gpus(gpus)
    path = project.dagster_home / "dagster.yaml"
    text = path.read_text(encoding="utf-8")
    new, found = _POOL_LIMIT.subn(lambda m: f"{m.group(1)}{gpus}", text, count=1)
    if not found:
        raise ProjectError(f"{path}: found no 'concurrency: pools: default_limit:' to set; add it "
                           f"(songexplorer_core/templates/dagster.yaml has it) or set the limit with "
                           f"`dagster instance concurrency set gpu {gpus}`")
    with atomic_write(path) as handle:
        handle.write(new)


def write_settings(project: Project, settings: ProjectSettings) -> None:
    text = (
        "# songexplorer-dagster project settings (SongExplorer's configuration.py)\n"
        f"audio_tic_rate = {int(settings.audio_tic_rate)}  # Hz: every recording must have this rate\n"
        f"audio_nchannels = {int(settings.audio_nchannels)}  # every recording must have this many channels\n"
        "# annotators whose <wav>-annotated-<name>.csv files are dense: scored by congruence, kept out of\n"
        "# training, and used by the promotion gate (empty: none)\n"
        f"dense_annotators = [{', '.join(json.dumps(n) for n in settings.dense_annotators)}]\n"
        "# other tools' annotation formats (raven, audacity, textgrid, das; docs/formats.md): ethograms are\n"
        "# also written in them, and such files beside the recordings are read as annotations (empty: none)\n"
        f"annotation_formats = [{', '.join(json.dumps(n) for n in settings.annotation_formats)}]\n"
        + _audio_settings_text(settings.audio)
    )
    with atomic_write(project.settings_path) as handle:
        handle.write(text)


def _audio_settings_text(audio: AudioSettings) -> str:
    """songexplorer.toml's lines for ``audio`` (docs/plugins.md); the defaults as comments."""
    lines = ["# how recordings are read (docs/plugins.md): a reader by name (empty: by file suffix), a high-pass\n"
             "# filter (Hz, 0: none), and a channel map making one recording per name of each file\n"]
    if audio == AudioSettings():
        return "".join(lines) + ('# audio_reader = "soundfile"\n# audio_highpass_hz = 0\n'
                                 '# audio_channel_map = {left = [0], right = [1]}\n')
    lines.append(f"audio_reader = {json.dumps(audio.reader)}\n")
    if audio.options:
        lines.append("audio_reader_options = {" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in audio.options) + "}\n")
    lines.append(f"audio_highpass_hz = {audio.highpass_hz:g}\naudio_highpass_order = {audio.highpass_order}\n")
    if audio.channel_map:
        lines.append("audio_channel_map = {" + ", ".join(f"{name} = {list(chs)}" for name, chs in audio.channel_map)
                     + "}\n")
    return "".join(lines)


def init_project(
    directory: str | os.PathLike,
    *,
    from_groundtruth: str | os.PathLike | None = None,
    link: bool = False,
    settings: ProjectSettings | None = None,
    gpus: int | None = None,
) -> Project:
    """Create a project folder (idempotent for an existing project).

    Args:
        directory: the project folder to create.
        from_groundtruth: an existing SongExplorer ground-truth folder to copy (or link) in.
        link: symlink ``groundtruth/`` to ``from_groundtruth`` instead of copying it.
        settings: rate and channels; by default read off the first recording found.
        gpus: how many GPU steps may run at once (:func:`set_gpu_limit`), for a new project or
            an existing one; ``None`` keeps what the instance settings say (1 in the template).
    """
    project = Project(Path(directory).expanduser().resolve())
    if gpus is not None:
        _check_gpus(gpus)  # before anything is written
    project.root.mkdir(parents=True, exist_ok=True)
    if from_groundtruth is not None:
        source = Path(from_groundtruth).expanduser().resolve()
        if not source.is_dir():
            raise ProjectError(f"{source}: not a folder; --from takes a SongExplorer ground-truth folder.")
        if source == project.root or source in project.root.parents:
            raise ProjectError(
                f"{project.root} is inside {source}: put the project folder outside the "
                f"ground-truth folder it copies from."
            )
        if project.groundtruth.exists() or project.groundtruth.is_symlink():
            if project.groundtruth.resolve() != source:
                raise ProjectError(
                    f"{project.groundtruth} already exists; use a new project folder or remove it first."
                )
        elif link:
            project.groundtruth.symlink_to(source, target_is_directory=True)
        else:
            shutil.copytree(source, project.groundtruth, ignore=shutil.ignore_patterns(".*"))
    project.groundtruth.mkdir(exist_ok=True)
    project.outputs.mkdir(exist_ok=True)
    project.dagster_home.mkdir(exist_ok=True)
    project.mlflow_dir.mkdir(exist_ok=True)
    instance_yaml = project.dagster_home / "dagster.yaml"
    if not instance_yaml.exists():
        with atomic_write(instance_yaml) as handle:
            handle.write(instance_template())
    if gpus is not None:
        set_gpu_limit(project, gpus)
    if not project.settings_path.exists():
        if settings is None:
            settings = _settings_from_recordings(project)
        write_settings(project, settings)
    return project


def _settings_from_recordings(project: Project) -> ProjectSettings:
    for path in find_recordings(project.groundtruth).values():
        try:
            info = recording_info(path)
        except RecordingError:
            continue
        return ProjectSettings(audio_tic_rate=info.rate, audio_nchannels=info.channels)
    return ProjectSettings()
