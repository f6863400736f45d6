"""``songexplorer summaries CSV...``: counts, song rates, bouts and inter-pulse intervals.

Reads interval CSVs (e.g. every ``<wav>-predicted.csv``), takes each recording's duration and
tic rate from its WAV (beside the CSV, or in ``--wav-dir``) and writes ``summary.csv`` (one row
per recording and label), ``summary-by-label.csv``, ``bouts.csv``, ``ipis.csv`` and
``ethogram.png`` into ``--out-dir``.
"""

from __future__ import annotations

from songexplorer_cli.options import nonnegative_float, positive_float, positive_int

from pathlib import Path

import pandas as pd

from songexplorer_cli.options import LabelsOption
from songexplorer_core.annotations import concat_intervals, read_intervals_csv
from songexplorer_core.summaries import SummaryError, write_summaries


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "summaries",
        help="song statistics per recording and label: rates, bouts, inter-pulse intervals",
        description="Summarise labelled intervals (predictions or annotations) per recording and label: "
        "events and events per minute, fraction of time covered, bouts (events grouped by --max-gap-sec) "
        "and their durations, inter-pulse intervals of pulse labels; one table across recordings and "
        "an ethogram raster plot.",
    )
    parser.add_argument("csvs", nargs="+", metavar="CSV", help="interval CSVs (any kinds, any recordings)")
    parser.add_argument("--out-dir", required=True, metavar="DIR", help="where to write the tables and the plot")
    parser.add_argument("--kinds", metavar="K1,K2",
                        help="only rows of these kinds, e.g. predicted (default: all rows)")
    parser.add_argument("--labels", metavar="L1,L2", action=LabelsOption, help="labels to summarise (default: all in the CSVs)")
    parser.add_argument("--pulse-labels", metavar="L1,L2", action=LabelsOption,
                        help="labels whose inter-pulse intervals are measured (default: names containing 'pulse')")
    parser.add_argument("--max-gap-sec", type=nonnegative_float, default=0.5, metavar="SECONDS",
                        help="events at most this far apart (end to start) form one bout (default %(default)s)")
    parser.add_argument("--max-ipi-sec", type=positive_float, default=0.1, metavar="SECONDS",
                        help="longest interval between pulse centres counted as an IPI (default %(default)s)")
    parser.add_argument("--wav-dir", metavar="DIR",
                        help="folder of the recordings (default: each CSV's own folder)")
    parser.add_argument("--audio-tic-rate", type=positive_int, default=None, metavar="HZ",
                        help="expected tic rate, Hz; recordings at another rate are refused (default: theirs)")
    parser.add_argument("--no-plot", action="store_true", help="do not draw ethogram.png")
    parser.set_defaults(func=run)


def _split(text):
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


def run(args) -> int:
    from songexplorer_core.audio import recording_info

    frames, durations, rates = [], {}, {}
    for path in map(Path, args.csvs):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such CSV")
        frame = read_intervals_csv(path, allow_unknown_kinds=True)
        kinds = _split(args.kinds)
        if kinds is not None:
            frame = frame[frame["kind"].isin(kinds)]
        frames.append(frame)
        for wav in map(str, frame["wav"].unique()):
            if wav in durations:
                continue
            wav_path = (Path(args.wav_dir) if args.wav_dir else path.parent) / wav
            if not wav_path.is_file():
                raise SummaryError(f"{path}: names recording {wav}, which is not at {wav_path}; "
                                   f"pass --wav-dir with the folder of the recordings")
            info = recording_info(wav_path)
            durations[wav], rates[wav] = info.duration_s, info.rate
    if not durations:
        raise SummaryError("the CSVs hold no rows" + (f" of kind(s) {args.kinds}" if args.kinds else ""))
    wanted = {args.audio_tic_rate} if args.audio_tic_rate else set(rates.values())
    if len(set(rates.values()) | wanted) != 1:
        raise SummaryError(f"recordings at different tic rates: {rates}; summarise them separately")
    written = write_summaries(concat_intervals(frames), durations, args.out_dir, rate=rates[next(iter(rates))],
                              labels=_split(args.labels), max_gap_s=args.max_gap_sec, max_ipi_s=args.max_ipi_sec,
                              pulse_labels=_split(args.pulse_labels), plot=not args.no_plot)
    summary = pd.read_csv(Path(args.out_dir) / "summary.csv")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(summary[["recording", "label", "events", "events_per_min", "bouts", "bout_mean_s", "ipi_n",
                       "ipi_mean_s"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {len(written)} file(s) to {args.out_dir}")
    return 0
