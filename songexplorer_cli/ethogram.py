"""``songexplorer ethogram WAV... --thresholds FILE --probabilities-dir DIR``: predicted intervals.

Writes, per recording, ``<wav>-predicted-<ratio>pr.csv`` for each precision/recall ratio of the
thresholds file (``<wav>-predicted.csv`` when the file does not state one, as SongExplorer
v0.9.1 names it) and ``<wav>-ethogram.log`` naming the model and thresholds file.
"""

from __future__ import annotations

from songexplorer_cli.options import fraction, nonnegative_float, positive_int

import sys
from pathlib import Path

from tqdm import tqdm

from songexplorer_core.annotations import read_intervals_csv
from songexplorer_core.ethogram import (
    DEFAULT_EVENT_MIN_PEAK, DEFAULT_EVENT_REFRACTORY_FRACTION, DEFAULT_METHOD, DEFAULT_MIN_SEGMENT_FRACTION, METHOD_CHOICES,
    run_ethogram,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ethogram",
        help="turn probabilities into predicted intervals",
        description="Turn the probabilities classify wrote into predicted intervals (SongExplorer's "
        "ethogram): every sample gets its most probable label (method 'maxprob'), or every run of "
        "samples strictly above a label's threshold becomes a 'predicted' interval (method "
        "'threshold'). The default, 'auto', is maxprob for exclusive models and threshold for "
        "overlapped ones. Reads <wav>-probabilities.npz, else SongExplorer's probability WAVs.",
    )
    parser.add_argument("recordings", nargs="+", metavar="WAV",
                        help="recordings whose probabilities to use (only their names matter)")
    parser.add_argument("--thresholds", required=True, metavar="FILE",
                        help="thresholds file from accuracy: thresholds.ckpt-<N>.csv, "
                        "thresholds-<ratio>pr.ckpt-<N>.csv, a congruence dense file, or SongExplorer's "
                        "older 'precision/recall,...' format (one output per ratio)")
    parser.add_argument("--probabilities-dir", required=True, metavar="DIR",
                        help="folder holding the classify outputs of the recordings")
    parser.add_argument("--out-dir", metavar="DIR", help="folder for the CSVs and logs (default: --probabilities-dir)")
    parser.add_argument("--audio-tic-rate", type=positive_int, default=None, metavar="HZ",
                        help="the recordings' tic rate, Hz; needed only when reading probability WAVs "
                        "(the .npz records it)")
    parser.add_argument("--method", default=DEFAULT_METHOD, metavar="NAME",
                        help="'threshold' (SongExplorer's default), 'maxprob', or 'auto': maxprob for exclusive "
                        "models, threshold for overlapped ones (default %(default)s; why: docs/recipe.md); or an "
                        f"installed ethogram plug-in (`songexplorer plugins`). Built in: {', '.join(METHOD_CHOICES)}")
    parser.add_argument("--min-segment-fraction", type=nonnegative_float, default=DEFAULT_MIN_SEGMENT_FRACTION, metavar="F",
                        help="drop predicted intervals of a label annotated only with ranges (sine, syllables) "
                        "shorter than F times its shortest annotated range (from the model folder's "
                        "annotation-durations.csv); 0 keeps them all, as SongExplorer (default %(default)s)")
    parser.add_argument("--event-refractory-fraction", type=nonnegative_float, default=DEFAULT_EVENT_REFRACTORY_FRACTION,
                        metavar="F",
                        help="a label annotated only with points (pulses) gives one event per peak of its "
                        "probability, peaks closer than F times the shortest gap between two annotated points "
                        "(at most 20 ms) being one; 0: one interval per run of samples, as SongExplorer "
                        "(default %(default)s)")
    parser.add_argument("--event-min-peak", type=fraction, default=DEFAULT_EVENT_MIN_PEAK, metavar="P",
                        help="those events need their probability to peak at least this high (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from songexplorer_core.ethogram import check_method

    check_method(args.method)  # an unknown or broken method stops here, naming those there are
    failures = []
    recordings = [Path(p).name for p in args.recordings]
    bar = tqdm(recordings, desc="ethogram", unit="recording", disable=args.no_progress, file=sys.stderr)
    for wav in bar:
        bar.set_postfix_str(wav)
        try:
            written = run_ethogram(wav, args.thresholds, probabilities_dir=args.probabilities_dir,
                                   rate=args.audio_tic_rate, out_dir=args.out_dir, method=args.method,
                                   min_segment_fraction=args.min_segment_fraction,
                                   event_refractory_fraction=args.event_refractory_fraction,
                                   event_min_peak=args.event_min_peak)
        except (ValueError, OSError, KeyError) as error:
            failures.append(wav)
            tqdm.write(f"songexplorer ethogram: error: {error}", file=sys.stderr)
            continue
        for path in written:
            counts = read_intervals_csv(path)["label"].value_counts()
            summary = ", ".join(f"{counts[x]} {x}" for x in sorted(counts.index)) or "nothing predicted"
            tqdm.write(f"{wav}: {summary} -> {path}", file=sys.stdout)
    if failures:
        print(f"songexplorer ethogram: {len(failures)} of {len(recordings)} recording(s) failed: "
              f"{', '.join(failures)}", file=sys.stderr)
        return 1
    return 0
