"""The ``detection`` group: SongExplorer's time/frequency threshold detector, per recording."""

from typing import Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from songexplorer_core.atomic import atomic_path
from songexplorer_core.audio import check_recording
from songexplorer_dagster.batches import RECORDINGS_BACKFILL, per_recording
from songexplorer_dagster.failures import fails_clearly
from songexplorer_dagster.constants import INSIDE_CHECK, ORDER_CHECK, PREVIEW_ROWS
from songexplorer_dagster.defs.resources import ProjectResource
from songexplorer_dagster.metadata import annotator_link, intervals_preview
from songexplorer_dagster.partitions import recordings_partitions


class DetectionConfig(dg.Config):
    """Every parameter of SongExplorer's ``time-freq-threshold`` detector, with its defaults
    (they mirror ``songexplorer_core.detect.DetectParams``; times in ms, frequencies in Hz)."""

    time_sigma: list[int] = Field(
        default=[9, 4],
        description="[σ_signal, σ_noise] in MADs: a tic is loud above σ_signal, not quiet above σ_noise.",
    )
    time_smooth_ms: float = Field(
        default=6.4, description="Loud stretches closer than this (ms) are merged (6.4 ms = 16 tics at 2500 Hz)."
    )
    frequency_n_ms: float = Field(
        default=25.6,
        description="F-test window (ms); must be a power of two in tics (25.6 ms = 64 tics at 2500 Hz).",
    )
    frequency_nw: int = Field(default=4, description="Time-half-bandwidth product NW of the DPSS tapers.")
    frequency_p: list[float] = Field(
        default=[0.1, 1.0],
        description="[ρ_signal, ρ_noise]: each times 1/NFFT is the F-test's false-positive rate per bin.",
    )
    frequency_range_hz: list[float | None] = Field(
        default=[0.0, None],
        description="[low, high] Hz: only lines inside count as tonal; high null means the Nyquist frequency.",
    )
    frequency_smooth_ms: float = Field(
        default=25.6, description="Smoothing (ms) of flagged F-test windows: opening, then closing."
    )
    time_sigma_robust: Literal["median", "mean"] = Field(
        default="median", description="'median' (median and MAD) or 'mean' (mean and standard deviation)."
    )
    detector: str = Field(
        default="time-freq-threshold",
        description="Detector by name: 'time-freq-threshold' (SongExplorer's, with the parameters above) or an "
                    "installed detector plug-in (songexplorer.detectors: `songexplorer plugins`), which gets "
                    "detector_parameters instead.",
    )
    detector_parameters: dict[str, str] = Field(
        default={}, description="A plug-in detector's parameters, as text (its documentation names them).")
    songexplorer_quirks: bool = Field(
        default=True,
        description=(
            "Reproduce SongExplorer v0.9.1's rows exactly (exclusive `time` stops, `frequency` rows "
            "that may start before tic 0, `neither` missing the ends). Off: inclusive intervals "
            "inside the recording, as every other interval in the project."
        ),
    )

    def to_params(self):
        """The ``songexplorer_core.detect.DetectParams`` these values describe.

        Raises:
            ValueError: naming the parameter, for values the detector cannot use.
        """
        from songexplorer_core.detect import DetectParams  # scipy: only when a step runs

        if len(self.frequency_range_hz) != 2:
            raise ValueError(
                f"frequency_range_hz must be [low, high] in Hz (high may be null); got {self.frequency_range_hz!r}"
            )
        return DetectParams(
            time_sigma=tuple(self.time_sigma),
            time_smooth_ms=self.time_smooth_ms,
            frequency_n_ms=self.frequency_n_ms,
            frequency_nw=self.frequency_nw,
            frequency_p=tuple(self.frequency_p),
            frequency_range_hz=tuple(self.frequency_range_hz),
            frequency_smooth_ms=self.frequency_smooth_ms,
            time_sigma_robust=self.time_sigma_robust,
        )


# --------------------------------------------------------------------------------------------
# checks (pure functions of the interval table)


def intervals_outside(frame: pd.DataFrame, ntics: int, *, first: int = 0, last: int | None = None) -> pd.DataFrame:
    """Rows reaching outside tics ``first`` .. ``last`` (default: the recording, 0 .. ntics - 1)."""
    last = ntics - 1 if last is None else last
    return frame[(frame["start"] < first) | (frame["stop"] > last)]


def intervals_reversed(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose stop tic comes before their start tic."""
    return frame[frame["stop"] < frame["start"]]


def _check_result(name: str, bad: pd.DataFrame, *, rate: int, what: str) -> dg.AssetCheckResult:
    severity = dg.AssetCheckSeverity.ERROR
    description = f"{len(bad)} interval(s) {what}" if len(bad) else f"no interval {what}"
    return dg.AssetCheckResult(
        check_name=name,
        passed=not len(bad),
        severity=severity,
        description=description,
        metadata={"bad_intervals": dg.MetadataValue.int(len(bad)), "first_bad": intervals_preview(bad, rate, max_rows=PREVIEW_ROWS)},
    )


# --------------------------------------------------------------------------------------------
# the asset


@dg.asset(
    partitions_def=recordings_partitions,
    deps=["recordings"],
    group_name="detection",
    kinds={"scipy", "parquet", "csv"},
    check_specs=[
        dg.AssetCheckSpec(
            INSIDE_CHECK,
            asset="detections",
            blocking=True,
            description="Every detected interval lies inside its recording (tics 0 .. ntics-1).",
        ),
        dg.AssetCheckSpec(
            ORDER_CHECK,
            asset="detections",
            blocking=True,
            description="No detected interval stops before it starts.",
        ),
    ],
    backfill_policy=RECORDINGS_BACKFILL,
)
@fails_clearly
def detections(context: dg.AssetExecutionContext, config: DetectionConfig, project: ProjectResource):
    """One recording split into ``detected`` intervals labelled ``time`` (loud), ``frequency``
    (tonal) and ``neither`` (quiet) by ``songexplorer_core.detect.detect_recording``, with the
    parameters of ``DetectionConfig`` (SongExplorer's defaults; times in ms, frequencies in Hz).

    The rows are written twice, each atomically: ``outputs/detections/<key>.parquet`` (the
    project's interval table, tics 0-based and inclusive) for the steps downstream, and
    ``outputs/detected/<dir>/<wav>-detected.csv`` (SongExplorer's headerless CSV). With
    ``songexplorer_quirks`` on (the default) the rows are SongExplorer v0.9.1's exactly,
    including its tic conventions: ``time`` stops are exclusive and ``frequency`` rows may start
    up to a quarter F-test window before tic 0. Two blocking checks run in the same step: every
    interval lies inside the recording (SongExplorer's own bounds with the quirks on) and none
    stops before it starts. Many recordings run in batches, one partition each
    (``songexplorer_dagster.batches``); a batch's checks are evaluated once, naming the
    recordings that fail them.
    """
    params = config.to_params()
    yield from per_recording(context, lambda key, step: _detect_one(step, config, params, project, key),
                             what="detected")


def _detect_one(context: dg.AssetExecutionContext, config: DetectionConfig, params, project: ProjectResource,
                key: str) -> tuple[dict, list[dg.AssetCheckResult]]:
    from songexplorer_core.detect import DEFAULT_DETECTOR, detect_recording, detect_with, write_detected_csv

    path = project.recording_path(key)
    settings = project.settings()
    builtin = config.detector == DEFAULT_DETECTOR
    info = check_recording(path, expected_rate=settings.audio_tic_rate, expected_channels=settings.audio_nchannels)
    expected = {"expected_rate": settings.audio_tic_rate, "expected_channels": settings.audio_nchannels}
    if builtin:
        frame = detect_recording(path, params, quirks=config.songexplorer_quirks, **expected)
    else:  # a plug-in (songexplorer.detectors): its own parameters, intervals inside the recording
        frame = detect_with(config.detector, path, config.detector_parameters, **expected)

    parquet_path = project.project().detections_path(key)
    with atomic_path(parquet_path) as temporary:
        frame.to_parquet(temporary, index=False, engine="pyarrow")
    csv_path = write_detected_csv(frame, project.project().detected_csv_path(key))

    counts = {str(label): int(n) for label, n in frame["label"].value_counts(sort=False).items()}
    context.log.info(f"{path}: {len(frame)} detected intervals {counts}")
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "intervals_per_label": dg.MetadataValue.json(counts),
        **{f"n_{label}": dg.MetadataValue.int(n) for label, n in sorted(counts.items())},
        "preview": intervals_preview(frame, info.rate, max_rows=PREVIEW_ROWS),
        **annotator_link(key, frame["start"], info.rate, "the first detected sound"),
        "detector": dg.MetadataValue.text(config.detector),
        "parameters": dg.MetadataValue.json(
            {**params.to_songexplorer(), "songexplorer_quirks": config.songexplorer_quirks} if builtin
            else dict(config.detector_parameters)
        ),
        "recording": dg.MetadataValue.path(str(path)),
        "parquet": dg.MetadataValue.path(str(parquet_path)),
        "csv": dg.MetadataValue.path(str(csv_path)),
    }
    if builtin and config.songexplorer_quirks:
        # SongExplorer's bounds: frequency rows from a quarter window before tic 0, exclusive time stops
        first, last = -(params.settings(info.rate).window_tics // 4), info.frames
    else:
        first, last = 0, info.frames - 1
    checks = [
        _check_result(
            INSIDE_CHECK,
            intervals_outside(frame, info.frames, first=first, last=last),
            rate=info.rate,
            what=f"outside tics {first}..{last}",
        ),
        _check_result(ORDER_CHECK, intervals_reversed(frame), rate=info.rate, what="stop before start"),
    ]
    return metadata, checks
