"""The project folder as a Dagster resource.

Assets and sensors never build paths themselves: they ask :class:`ProjectResource` where a
recording is and where its outputs go, so the folder layout (``songexplorer_core.project``) is
defined once, and tests point the whole graph at a temporary project by passing
``ProjectResource(root=str(tmp_path))``.
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

from songexplorer_core.project import (
    Project,
    ProjectSettings,
    find_recordings,
    project_from_env,
    recording_path,
    recording_relpath,
)


def default_project_root() -> str:
    """``$SONGEXPLORER_PROJECT``, else ``./songexplorer-project``, as an absolute path."""
    return str(project_from_env().root)


class ProjectResource(dg.ConfigurableResource):
    """A songexplorer-dagster project folder: ``groundtruth/`` (recordings, read only),
    ``outputs/`` (everything derived) and ``songexplorer.toml`` (rate and channels).

    Output layout, for a recording with key ``K`` at ``groundtruth/<dir>/<wav>``:

    * ``outputs/recordings/K.json``: what the recording's header said when it was checked;
    * ``outputs/detections/K.parquet``: detected intervals (the project's interval table);
    * ``outputs/detected/<dir>/<wav>-detected.csv``: the same rows as SongExplorer's CSV.
    """

    root: str = Field(
        default_factory=default_project_root,
        description=(
            "Project folder. Defaults to the SONGEXPLORER_PROJECT environment variable, "
            "else ./songexplorer-project (resolved when the code location loads)."
        ),
    )

    # -- the project ----------------------------------------------------------------------

    def project(self) -> Project:
        """The core :class:`~songexplorer_core.project.Project` for ``root``."""
        return Project(Path(self.root).expanduser().resolve())

    def settings(self) -> ProjectSettings:
        """The project's ``songexplorer.toml`` (audio_tic_rate in Hz, audio_nchannels)."""
        return self.project().settings()

    def find_recordings(self) -> dict[str, Path]:
        """Every recording under ``groundtruth/``: ``{key: absolute path}``, sorted by key
        (hidden, temporary and ``oldfiles-*``/``congruence-*`` files skipped)."""
        return find_recordings(self.project().groundtruth)

    def recording_path(self, key: str) -> Path:
        """Absolute path of the recording with partition key ``key``.

        Raises:
            songexplorer_core.project.ProjectError: if the key is malformed or resolves
                outside ``groundtruth/``.
        """
        return recording_path(self.project(), key)

    # -- outputs --------------------------------------------------------------------------

    def recording_record_path(self, key: str) -> Path:
        """``outputs/recordings/<key>.json``: the checked header of recording ``key``."""
        return self.project().outputs / "recordings" / f"{_checked_key(key)}.json"

    def detections_path(self, key: str) -> Path:
        """``outputs/detections/<key>.parquet``: recording ``key``'s detected intervals."""
        return self.project().outputs / "detections" / f"{_checked_key(key)}.parquet"

    def detected_csv_path(self, key: str) -> Path:
        """``outputs/detected/<dir>/<wav>-detected.csv``: SongExplorer's name and folder
        structure for recording ``key`` (``round1%2FPS.wav`` -> ``detected/round1/PS.wav-detected.csv``)."""
        relative = recording_relpath(key)
        return self.project().outputs / "detected" / relative.parent / f"{relative.name}-detected.csv"


def _checked_key(key: str) -> str:
    # recording_relpath refuses absolute keys and "..": a key is a safe single file name.
    recording_relpath(key)
    if "/" in key or key in ("", ".", ".."):
        raise ValueError(f"{key!r} is not a recording key (keys never contain '/')")
    return key
