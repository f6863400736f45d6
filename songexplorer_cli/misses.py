"""``songexplorer misses CSV[,CSV...]``: detected sounds no prediction covers.

As SongExplorer's ``misses``: rows of kind ``detected`` (normally ``<wav>-detected.csv``) against
rows of kind ``predicted`` (``<wav>-predicted.csv``); writes ``<wav>-missed.csv`` (kind
``missed``, label ``other``) beside the first CSV, or into ``--out-dir``.
"""

from __future__ import annotations

from pathlib import Path

from songexplorer_cli.options import LabelsOption
from songexplorer_core.annotations import read_intervals_csv
from songexplorer_core.misses import misses_from_csvs


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "misses",
        help="find detected sounds that no prediction covers",
        description="Every stretch of tics inside a detected interval (labels time, frequency and "
        "neither alike, unless --detected-labels says otherwise) and inside no predicted interval "
        "becomes a row of <wav>-missed.csv: sounds the model said nothing about, to annotate next. "
        "Misses at the very start or end of a recording are kept (SongExplorer dropped them).",
    )
    parser.add_argument("csvs", nargs="+", metavar="CSV",
                        help="interval CSVs, comma-separated or as separate arguments, normally "
                        "<wav>-detected.csv and <wav>-predicted.csv")
    parser.add_argument("--out-dir", metavar="DIR", help="where to write (default: the first CSV's folder)")
    parser.add_argument("--detected-labels", metavar="L1,L2", action=LabelsOption,
                        help="only detections of these labels count, e.g. time,frequency (default all)")
    parser.add_argument("--quirks", action="store_true",
                        help="reproduce SongExplorer exactly: drop misses touching the first or last tic "
                        "of its mask, which ends at the largest stop (QUIRK 3)")
    parser.set_defaults(func=run)


def _recording_lengths(paths: list[Path]) -> dict[str, int]:
    """Lengths, in tics, of the recordings whose WAVs lie beside the CSVs (to clip stops)."""
    from songexplorer_core.audio import recording_info

    lengths = {}
    for path in paths:
        for wav in set(read_intervals_csv(path, allow_unknown_kinds=True)["wav"]):
            candidate = path.parent / str(wav)
            if str(wav) not in lengths and candidate.is_file():
                lengths[str(wav)] = recording_info(candidate).frames
    return lengths


def run(args) -> int:
    paths = [Path(part) for item in args.csvs for part in item.split(",") if part]
    detected_labels = [x for x in args.detected_labels.split(",") if x] if args.detected_labels else None
    written = misses_from_csvs(paths, out_dir=args.out_dir, ntics=_recording_lengths(
        [p for p in paths if p.exists()]), detected_labels=detected_labels, quirks=args.quirks)
    for path in written:
        rows = len(read_intervals_csv(path))
        print(f"{path}: {rows} miss{'es' if rows != 1 else ''}")
    return 0
