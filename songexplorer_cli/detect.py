"""``songexplorer detect WAV... --out-dir DIR``: SongExplorer's time/frequency threshold detector,
or a detector plug-in by name (``--detector NAME``, docs/plugins.md).

Writes ``<wav basename>-detected.csv`` per recording into ``--out-dir`` in SongExplorer's format
(``wav,start,stop,detected,label``; ``time``, then ``frequency``, then ``neither`` rows), each
file atomically. A recording that cannot be read or detected is reported by name and skipped;
the others are still written, and the exit status is 1.
"""

from __future__ import annotations

from songexplorer_cli.options import add_audio_options, key_value, positive_int

import sys
from pathlib import Path

from tqdm import tqdm

from songexplorer_core.detect import (
    DEFAULT_DETECTOR,
    DetectParams,
    detect_recording,
    detect_with,
    detected_csv_name,
    write_detected_csv,
)

_DEFAULTS = DetectParams().to_songexplorer()


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="find loud, tonal and quiet intervals (SongExplorer's time-freq-threshold)",
        description="Detect intervals in recordings with SongExplorer's time/frequency threshold "
        "detector and write <wav>-detected.csv for each. Defaults are SongExplorer's; its output "
        "is reproduced row for row (including its tic conventions, see docs/detection.md) unless "
        "--fix-quirks is given.",
    )
    parser.add_argument("recordings", nargs="+", metavar="WAV", help="recordings (16-bit WAV)")
    parser.add_argument("--out-dir", required=True, metavar="DIR",
                        help="folder for the <wav>-detected.csv files (created if missing)")
    parser.add_argument("--time-sigma", default=_DEFAULTS["time_sigma"], metavar="SIG,NOISE",
                        help="time σ: two whole numbers of MADs, loud above the first, not quiet above "
                        "the second (default %(default)s)")
    parser.add_argument("--time-smooth-ms", default=_DEFAULTS["time_smooth"], metavar="MS",
                        help="time smooth: merge loud stretches closer than this, ms (default %(default)s)")
    parser.add_argument("--frequency-n-ms", default=_DEFAULTS["frequency_n"], metavar="MS",
                        help="freq N: F-test window, ms; must be a power of two in tics (default %(default)s)")
    parser.add_argument("--frequency-nw", default=_DEFAULTS["frequency_nw"], metavar="NW",
                        help="freq NW: time-half-bandwidth product of the tapers (default %(default)s)")
    parser.add_argument("--frequency-p", default=_DEFAULTS["frequency_p"], metavar="SIG,NOISE",
                        help="freq ρ: two multipliers of the per-bin F-test p-value 1/NFFT, for tonal "
                        "and for not-quiet (default %(default)s)")
    parser.add_argument("--frequency-range", default=_DEFAULTS["frequency_range"], metavar="LO-HI",
                        help="freq range, Hz; either side may be empty: '0-' is 0 Hz to Nyquist "
                        "(default %(default)s)")
    parser.add_argument("--frequency-smooth-ms", default=_DEFAULTS["frequency_smooth"], metavar="MS",
                        help="freq smooth: drop tonal stretches and fill gaps shorter than this, ms "
                        "(default %(default)s)")
    parser.add_argument("--time-sigma-robust", default=_DEFAULTS["time_sigma_robust"], choices=("median", "mean"),
                        help="centre/spread of the time criterion: median & MAD, or mean & standard "
                        "deviation (default %(default)s)")
    parser.add_argument("--audio-tic-rate", type=positive_int, default=None, metavar="HZ",
                        help="refuse recordings not sampled at this rate, Hz (default: accept any)")
    parser.add_argument("--audio-nchannels", type=positive_int, default=None, metavar="N",
                        help="refuse recordings without this many channels (default: accept any)")
    parser.add_argument("--fix-quirks", action="store_true",
                        help="write inclusive, in-range intervals (time stops inclusive, no negative "
                        "frequency starts, quiet stretches at the ends kept) instead of SongExplorer's")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, metavar="NAME",
                        help="detector by name: SongExplorer's (default %(default)s, with the options above) or an "
                        "installed plug-in (`songexplorer plugins`), which gets --detector-parameter instead")
    parser.add_argument("--detector-parameter", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="a plug-in detector's parameter (repeat for more)")
    add_audio_options(parser)
    parser.set_defaults(func=run)


def params_from_args(args) -> DetectParams:
    """The :class:`DetectParams` named by the command-line options (SongExplorer's string forms)."""
    return DetectParams.from_strings(
        time_sigma=args.time_sigma,
        time_smooth=args.time_smooth_ms,
        frequency_n=args.frequency_n_ms,
        frequency_nw=args.frequency_nw,
        frequency_p=args.frequency_p,
        frequency_range=args.frequency_range,
        frequency_smooth=args.frequency_smooth_ms,
        time_sigma_robust=args.time_sigma_robust,
    )


def run(args) -> int:
    params = params_from_args(args)  # a bad parameter stops here, before anything is written
    if args.detector != DEFAULT_DETECTOR:
        from songexplorer_core import plugins

        plugins.load("detectors", args.detector)  # an unknown or broken detector stops here too
    elif args.detector_parameter:
        raise ValueError("--detector-parameter is for plug-in detectors; SongExplorer's takes its own options "
                         "(--time-sigma, ...)")
    if args.audio_tic_rate is not None:
        params.settings(args.audio_tic_rate)  # and so does one unusable at the expected rate
    out_dir = Path(args.out_dir)
    recordings = [Path(path) for path in args.recordings]
    names = [detected_csv_name(path) for path in recordings]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise ValueError(
            f"several recordings would write the same output {clashes}: recordings in different "
            f"folders share a name; run them with different --out-dir"
        )
    failures = []
    bar = tqdm(recordings, desc="detect", unit="recording", disable=args.no_progress, file=sys.stderr)
    for path, name in zip(bar, names):
        bar.set_postfix_str(path.name)
        try:
            expected = {"expected_rate": args.audio_tic_rate, "expected_channels": args.audio_nchannels}
            if args.detector == DEFAULT_DETECTOR:
                frame = detect_recording(path, params, quirks=not args.fix_quirks, **expected)
            else:
                frame = detect_with(args.detector, path, dict(args.detector_parameter), **expected)
        except (ValueError, OSError) as error:
            failures.append(path)
            tqdm.write(f"songexplorer detect: error: {error}", file=sys.stderr)
            continue
        write_detected_csv(frame, out_dir / name)
        counts = frame["label"].value_counts()
        summary = ", ".join(f"{counts[label]} {label}" for label in sorted(counts.index))
        tqdm.write(f"{path.name}: {summary or 'nothing detected'} -> {out_dir / name}", file=sys.stdout)
    if failures:
        print(f"songexplorer detect: {len(failures)} of {len(recordings)} recording(s) failed, "
              f"nothing written for them: {', '.join(str(p) for p in failures)}", file=sys.stderr)
        return 1
    return 0
