"""``songexplorer import`` and ``songexplorer export``: annotation formats of other tools.

``import FILE...`` reads Raven selection tables, Audacity label tracks, Praat TextGrids or DAS
CSVs into SongExplorer's interval CSVs; ``export CSV...`` writes SongExplorer CSVs in those
formats. Times convert exactly at the recording's rate (docs/formats.md).
"""

from __future__ import annotations

from pathlib import Path

from songexplorer_cli.options import positive_int

FORMAT_HELP = "raven, audacity, textgrid or das"


def register(subparsers) -> None:
    importer = subparsers.add_parser(
        "import",
        help="read annotation formats of other tools (Raven, Audacity, Praat, DAS) into SongExplorer CSVs",
        description="Each FILE (a Raven selection table, an Audacity label track, a Praat TextGrid or a DAS "
        "annotations CSV) becomes a SongExplorer interval CSV: seconds become tics at the recording's rate "
        "(the nearest tic, halves up), points stay points, labels are kept as they are (a label that is not "
        "a name, e.g. with a comma, is refused with its line). A file with a bad row is not imported at all.",
    )
    importer.add_argument("files", nargs="+", metavar="FILE", help="annotation files of another tool")
    importer.add_argument("--format", metavar="NAME", help=f"{FORMAT_HELP} (default: by each file's name: "
                          ".Table.1.selections.txt, .txt, .TextGrid, _annotations.csv)")
    importer.add_argument("--wav", metavar="PATH", help="the recording the files annotate: its name, rate and "
                          "length (default: the recording the file's name says, beside it)")
    importer.add_argument("--rate", type=positive_int, metavar="HZ",
                          help="the recording's sample rate, when the recording is not at hand")
    importer.add_argument("--kind", metavar="KIND", help="kind of the rows (default: what the file's name says, "
                          "else annotated)")
    importer.add_argument("--label-column", metavar="NAME", help="Raven: the column holding the label "
                          "(default Annotation)")
    importer.add_argument("-o", "--output", metavar="PATH", help="the CSV to write (one FILE), or a folder "
                          "(default: beside each FILE, <wav>-annotated-<annotator>.csv)")
    importer.add_argument("--force", action="store_true", help="replace CSVs that exist already")
    importer.set_defaults(func=run_import)

    exporter = subparsers.add_parser(
        "export",
        help="write SongExplorer CSVs in annotation formats of other tools (Raven, Audacity, Praat, DAS)",
        description="Each CSV (one recording's rows of one kind, as SongExplorer's files are) is written as "
        "<csv name without .csv><suffix> in each format: .Table.1.selections.txt (raven), .txt (audacity), "
        ".TextGrid (textgrid), _annotations.csv (das). Importing such a file gives the CSV back exactly.",
    )
    exporter.add_argument("csvs", nargs="+", metavar="CSV", help="SongExplorer interval CSVs")
    exporter.add_argument("--format", required=True, metavar="NAME[,NAME]", help=f"{FORMAT_HELP}; several "
                          "comma-separated")
    exporter.add_argument("--rate", type=positive_int, metavar="HZ", help="the recordings' sample rate "
                          "(default: read from the recording beside each CSV)")
    exporter.add_argument("-o", "--out-dir", metavar="DIR", help="where to write (default: beside each CSV)")
    exporter.add_argument("--force", action="store_true", help="replace files that exist already")
    exporter.set_defaults(func=run_export)


def _recording(path: Path, rate: int | None, what: str) -> tuple[int, dict[str, int] | None, int | None]:
    """``(rate, {name: tics}, tics)`` of a recording file (``rate`` must agree when given)."""
    from songexplorer_core.audio import recording_info
    from songexplorer_core.formats import FormatError

    info = recording_info(path)
    if rate is not None and rate != info.rate:
        raise FormatError(f"{path}: is {info.rate} Hz but --rate says {rate} Hz; drop --rate or give the "
                          f"recording {what}")
    return info.rate, {path.name: info.frames}, info.frames


def run_import(args) -> int:
    from songexplorer_core.annotations import write_intervals_csv
    from songexplorer_core.formats import FormatError, format_named, format_of_file, import_file, name_info

    output = Path(args.output) if args.output else None
    to_file = output is not None and output.suffix.lower() == ".csv" and not output.is_dir()
    if to_file and len(args.files) > 1:
        raise FormatError(f"{output}: one CSV for {len(args.files)} files; give a folder to -o instead")
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(2, "no such file", str(path))
        fmt = format_named(args.format) if args.format else format_of_file(path)
        if fmt is None:
            raise FormatError(f"{path}: the name does not say the format; give --format ({FORMAT_HELP})")
        info = name_info(path, fmt)
        wav = Path(args.wav) if args.wav else None
        if wav is None and info is not None and (path.parent / info.recording).is_file():
            wav = path.parent / info.recording
        if wav is not None:
            rate, tics, _ = _recording(wav, args.rate, "the files annotate")
        elif args.rate is not None:
            rate, tics = args.rate, None
        else:
            raise FormatError(f"{path}: the recording is not beside it ({info.recording if info else '?'}); give "
                              f"--wav PATH (its name, rate and length) or --rate HZ")
        notes: list[str] = []
        table, csv_name = import_file(path, fmt, rate=rate, wav=wav.name if args.wav else None, kind=args.kind,
                                      recording_tics=tics, label_column=args.label_column, notes=notes)
        target = output if to_file else (output or path.parent) / csv_name
        if target.exists() and not args.force:
            raise FormatError(f"{target}: exists already; move it away or pass --force to replace it")
        write_intervals_csv(table, target)
        for note in notes:
            print(f"note: {note}")
        points = int((table["start"] == table["stop"]).sum())
        print(f"{target}: {len(table)} row(s) ({points} point(s), {len(table) - points} range(s)) from {path} "
              f"({fmt.title}, {rate} Hz)")
    return 0


def run_export(args) -> int:
    from songexplorer_core.annotations import read_intervals_csv
    from songexplorer_core.formats import FormatError, check_format_names, export_csv, format_named

    names = check_format_names([n for n in args.format.split(",") if n.strip()], where="--format")
    if not names:
        raise FormatError(f"--format: name a format ({FORMAT_HELP})")
    for name in args.csvs:
        path = Path(name)
        rate, duration = args.rate, None
        wavs = sorted(set(map(str, read_intervals_csv(path, allow_unknown_kinds=True)["wav"])))
        beside = path.parent / wavs[0] if len(wavs) == 1 else None
        if beside is not None and beside.is_file():
            rate, _, duration = _recording(beside, args.rate, "it belongs to")
        if rate is None:
            raise FormatError(f"{path}: its recording is not beside it; give the sample rate with --rate HZ")
        for fmt_name in names:
            target = export_csv(path, format_named(fmt_name), rate=rate, out_dir=args.out_dir,
                                duration_tics=duration, overwrite=args.force)
            print(f"{target}: {format_named(fmt_name).title} of {path} ({rate} Hz)")
    return 0
