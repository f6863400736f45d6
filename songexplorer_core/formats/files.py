"""Annotation files of other tools, as the command line and Dagster use them: read one into an
interval table, export a SongExplorer CSV, find the files beside a recording.

**Names carry what the formats cannot.** An exported file is named after its CSV with the
format's suffix (``PS.wav-annotated-person1.csv`` -> ``PS.wav-annotated-person1.TextGrid``), so
importing it gives back the recording, the kind and the annotator. A file named as its tool
names it (``PS.Table.1.selections.txt``, ``PS.TextGrid``, ``PS.txt``, ``PS_annotations.csv``)
belongs to the recording ``PS.wav`` beside it, kind ``annotated``, annotator = the format's name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from songexplorer_core.annotations import (
    ANNOTATED_LABEL,
    CsvName,
    is_ignored_folder,
    parse_csv_name,
    read_intervals_csv,
)
from songexplorer_core.atomic import atomic_write, is_temporary
from songexplorer_core.formats.common import FormatError, events_to_table, read_text, table_rows
from songexplorer_core.formats.registry import Format, check_format_names, format_of_file
from songexplorer_core.formats.timing import check_rate, seconds_text


def name_info(path: str | os.PathLike, fmt: Format) -> CsvName | None:
    """What a file's name says: the recording, the kind and the annotator (``tag``).

    ``X.wav-annotated-NAME<suffix>`` (an export) gives ``(X.wav, annotated, NAME)``; any other
    ``X<suffix>`` or ``X.wav<suffix>`` gives ``(X.wav, annotated, <format name>)``. ``None``
    when the name has not the format's suffix.
    """
    stem = fmt.stem(Path(path).name)
    if stem is None:
        return None
    parsed = parse_csv_name(f"{stem}.csv")
    if parsed is not None:
        return parsed
    recording = stem if stem.lower().endswith(".wav") else f"{stem}.wav"
    return CsvName(recording=recording, kind="annotated", tag=fmt.name)


def read_annotation_file(
    path: str | os.PathLike,
    fmt: Format,
    *,
    rate: int,
    wav: str | None = None,
    kind: str | None = None,
    recording_tics: Mapping[str, int] | None = None,
    label_column: str | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """One file of format ``fmt`` as an interval table (``wav,start,stop,kind,label``, tics at
    ``rate`` Hz, docs/formats.md "Rounding").

    Args:
        path: the file.
        fmt: its format (:func:`~songexplorer_core.formats.format_named`).
        rate: the recording's sample rate, Hz.
        wav: the recording's file name; default: what the file's name says (:func:`name_info`).
        kind: the rows' kind; default: what the file's name says, else ``annotated``.
        recording_tics: recording file name -> tics, to refuse rows past the end.
        label_column: Raven only: the column holding the label (default ``Annotation``).
        notes: what was read in a way worth knowing (repeats merged) is appended here.

    Raises:
        FormatError: naming the file and each bad line; nothing is loaded.
    """
    path = Path(path)
    info = name_info(path, fmt)
    text = read_text(path, latin1_fallback=getattr(fmt.module, "LATIN1_FALLBACK", False))
    parsed = fmt.module.parse(text, label_column=label_column)
    return events_to_table(parsed, path, rate=rate, wav=wav or (info.recording if info else None),
                           kind=kind or (info.kind if info else "annotated"), recording_tics=recording_tics,
                           notes=notes)


def import_file(path: str | os.PathLike, fmt: Format, **kwargs) -> tuple[pd.DataFrame, str]:
    """:func:`read_annotation_file`, and the CSV name SongExplorer would give it:
    ``<recording>-<kind>-<annotator>.csv`` (``X.wav-annotated-raven.csv``; an exported file's
    own name back, ``X.wav-annotated-person1.csv``)."""
    table = read_annotation_file(path, fmt, **kwargs)
    info = name_info(path, fmt)
    stem = fmt.stem(Path(path).name)
    if stem is not None and parse_csv_name(f"{stem}.csv") is not None and not kwargs.get("wav") \
            and not kwargs.get("kind"):
        return table, f"{stem}.csv"
    recording = kwargs.get("wav") or (info.recording if info else Path(path).stem + ".wav")
    kind = kwargs.get("kind") or (info.kind if info else "annotated")
    tag = info.tag if info and info.tag else fmt.name
    return table, f"{recording}-{kind}-{tag}.csv" if kind in ("annotated", "predicted") else f"{recording}-{kind}.csv"


def render_table(table: pd.DataFrame, fmt: Format, *, rate: int, duration_tics: int | None = None,
                 source: str = "interval table") -> str:
    """The text of ``table`` (one recording's rows) in format ``fmt``, times at ``rate`` Hz;
    ``duration_tics``: the recording's length (a TextGrid's time domain), else the last stop."""
    rate = check_rate(rate)
    if ANNOTATED_LABEL in table.columns:
        raise FormatError(f"{source}: a mistakes file has two labels a row; export the annotated or the predicted "
                          f"CSV instead")
    recordings = sorted(set(map(str, table["wav"])))
    if len(recordings) > 1:
        raise FormatError(f"{source}: holds rows of {len(recordings)} recordings ({recordings[:3]}); {fmt.title}s "
                          f"hold one recording's: write one CSV per recording")
    rows = table_rows(table, rate, source=source)
    last = max([int(duration_tics or 0), 1, *(int(s) for s in table["stop"])])
    return fmt.module.render(rows, rate=rate, duration=seconds_text(last, rate))


def export_csv(
    csv_path: str | os.PathLike,
    fmt: Format,
    *,
    rate: int,
    out_dir: str | os.PathLike | None = None,
    duration_tics: int | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a SongExplorer CSV as a ``fmt`` file: ``<out_dir or its folder>/<csv stem><suffix>``,
    atomically. ``overwrite=False`` refuses to replace an existing file (another tool's work)."""
    csv_path = Path(csv_path)
    table = read_intervals_csv(csv_path, allow_unknown_kinds=True)
    kinds = sorted(set(map(str, table["kind"])))
    if len(kinds) > 1:
        raise FormatError(f"{csv_path}: holds {len(kinds)} kinds ({kinds}); {fmt.title}s do not keep the kind: "
                          f"write one CSV per kind (SongExplorer's files hold one)")
    text = render_table(table, fmt, rate=rate, duration_tics=duration_tics, source=str(csv_path))
    target = Path(out_dir or csv_path.parent) / (csv_path.name.removesuffix(".csv") + fmt.suffix)
    if not overwrite and target.exists():
        raise FormatError(f"{target}: exists already; move it away or pass --force to replace it")
    with atomic_write(target, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return target


def export_csvs(csv_paths: Iterable[str | os.PathLike], format_names: Iterable[str], *, rate: int,
                duration_tics: int | None = None) -> list[Path]:
    """Each CSV in each of ``format_names``, beside it (what the ``ethograms`` asset calls after
    writing its CSVs: ``annotation_formats`` in ``songexplorer.toml``). Returns the files written."""
    names = check_format_names(format_names)
    from songexplorer_core.formats.registry import format_named

    return [export_csv(path, format_named(name), rate=rate, duration_tics=duration_tics)
            for path in csv_paths for name in names]


def foreign_files_for_recording(wav_path: str | os.PathLike, format_names: Iterable[str],
                                kinds: Iterable[str] = ("annotated",)) -> list[tuple[Path, Format, CsvName]]:
    """The files beside a recording in the given formats whose names say they annotate it (the
    recording itself, of one of ``kinds``), sorted: ``(path, format, name_info)``."""
    wav_path = Path(wav_path)
    wanted = set(check_format_names(format_names))
    found = []
    if not wanted:
        return found
    for path in sorted(wav_path.parent.iterdir()):
        if not path.is_file() or is_temporary(path):
            continue
        fmt = format_of_file(path)
        if fmt is None or fmt.name not in wanted:
            continue
        info = name_info(path, fmt)
        if info is not None and info.recording == wav_path.name and info.kind in set(kinds):
            found.append((path, fmt, info))
    return found


def find_annotation_files(root: str | os.PathLike, format_names: Iterable[str],
                          kinds: Iterable[str] = ("annotated",)) -> list[Path]:
    """Every file below ``root`` (any depth, ``oldfiles-*``/``congruence-*`` folders skipped) in
    the given formats that annotates a recording beside it, sorted (the annotations sensor)."""
    root = Path(root)
    wanted = set(check_format_names(format_names))
    if not wanted:
        return []
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or is_temporary(path) or is_ignored_folder(path, root):
            continue
        fmt = format_of_file(path)
        if fmt is None or fmt.name not in wanted:
            continue
        info = name_info(path, fmt)
        if info is not None and info.kind in set(kinds) and (path.parent / info.recording).is_file():
            found.append(path)
    return found
