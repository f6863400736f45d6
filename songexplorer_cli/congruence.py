"""``songexplorer congruence GROUNDTRUTH``: agreement of the ethogram with dense annotations.

Finds every ``<wav>-annotated-<person>.csv`` under the ground-truth folder (or those of
``--wavfiles``), the recording's ``<wav>-predicted*.csv`` beside it and, for the threshold sweep,
its probabilities (``<wav>-probabilities.npz`` or SongExplorer's probability WAVs). Writes into
``--topath`` (default ``GROUNDTRUTH/congruence-<YYYYMMDDTHHMMSS>``, SongExplorer's place):
``congruence.<tic|label>.<label>.csv`` (SongExplorer's layout, positive thresholds),
``congruence-scores.csv``, ``congruence-counts.csv``, PNG plots, every recording's
``<wav>-disjoint-<kind>.csv`` (in the recording's sub-folder), and the dense thresholds
``thresholds-dense-<tic|label>-<timestamp>.ckpt-<N>.csv`` (in the model folder named by the
recording's ``<wav>-ethogram.log`` if there is one, else in ``--topath``).
"""

from __future__ import annotations

from songexplorer_cli.options import nonnegative_float, nonnegative_int, positive_float, positive_int

import re
import sys
import time
from pathlib import Path

from tqdm import tqdm

from songexplorer_cli.options import LabelsOption
from songexplorer_core.annotations import concat_intervals, find_interval_csvs, parse_csv_name, read_intervals_csv
from songexplorer_core.congruence import ABSENT, PORTIONS, SPANS, CongruenceError
from songexplorer_core.congruence_report import congruence_report
from songexplorer_core.models.folders import read_labels_txt


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "congruence",
        help="compare the ethogram with dense annotations by one or more people",
        description="Measure how well the model's predicted intervals agree with dense human "
        "annotations (SongExplorer's congruence), per label, at the level of tics and of whole "
        "events: everyone / only X / not X counts, precision, recall and F1 against SongExplorer's "
        "definition, each annotator, and their union and intersection; sweep one probability "
        "threshold over all labels and derive the dense thresholds where precision/recall equals "
        "--error-ratio.",
    )
    parser.add_argument("basepath", metavar="GROUNDTRUTH",
                        help="the ground-truth folder holding the recordings' annotation and prediction CSVs")
    parser.add_argument("--wavfiles", metavar="A.wav,B.wav",
                        help="comma-separated recordings to compare (default: every recording with a "
                        "<wav>-annotated-<name>.csv)")
    parser.add_argument("--annotators", metavar="NAME1,NAME2",
                        help="only these annotators (the <name> of <wav>-annotated-<name>.csv; default all)")
    parser.add_argument("--labels", metavar="L1,L2", action=LabelsOption, help="labels to compare (default: every label annotated)")
    parser.add_argument("--topath", metavar="DIR",
                        help="output folder (default GROUNDTRUTH/congruence-<YYYYMMDDTHHMMSS>)")
    parser.add_argument("--portion", choices=PORTIONS, default="union",
                        help="annotated stretch: the union or the intersection of the annotators' spans "
                        "(default %(default)s)")
    parser.add_argument("--span", choices=SPANS, default="annotations",
                        help="'annotations': a recording's span runs from the first to the last annotation of "
                        "any label; 'label': per label, as SongExplorer (default %(default)s)")
    parser.add_argument("--absent-annotators", choices=ABSENT, default="empty",
                        help="an annotator with no annotations in a recording: 'empty' = marked nothing there "
                        "(SongExplorer), 'skip' = left out of that recording (default %(default)s)")
    parser.add_argument("--convolve-sec", type=nonnegative_float, default=0.0, metavar="SECONDS",
                        help="tolerance in SECONDS: every interval is widened by half of it at both ends "
                        "(SongExplorer's GUI said ms but meant seconds; default %(default)s)")
    parser.add_argument("--measure", choices=("tic", "label", "both"), default="both",
                        help="count tics, events ('label'), or both (default %(default)s)")
    parser.add_argument("--nprobabilities", type=nonnegative_int, default=20, metavar="N",
                        help="thresholds in the sweep, evenly inside (0, 1); 0 = no sweep (default %(default)s)")
    parser.add_argument("--error-ratio", type=positive_float, default=1.0, metavar="P/R",
                        help="precision/recall ratio the dense thresholds aim at (default %(default)s)")
    parser.add_argument("--predicted", metavar="RATIO",
                        help="which <wav>-predicted-<RATIO>pr.csv to use when there are several "
                        "(default: the only one, or <wav>-predicted.csv)")
    parser.add_argument("--probabilities-dir", metavar="DIR",
                        help="where the probabilities are (default: each recording's folder)")
    parser.add_argument("--audio-tic-rate", type=positive_int, default=None, metavar="HZ",
                        help="tic rate, Hz (default: read from the recordings' WAV headers)")
    parser.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    parser.set_defaults(func=run)


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


def _dense_annotations(basepath: Path, wavfiles, annotators):
    """{annotator: table}, {recording: folder} from the ground truth's annotated CSVs."""
    tables: dict[str, list] = {}
    folders: dict[str, Path] = {}
    present: set[str] = set()  # annotators with files for the recordings asked for
    for path in find_interval_csvs(basepath, kinds=["annotated"]):
        parsed = parse_csv_name(path.name)
        if wavfiles is not None and parsed.recording not in wavfiles:
            continue
        present.add(parsed.tag)
        if annotators is not None and parsed.tag not in annotators:
            continue
        if parsed.recording in folders and folders[parsed.recording] != path.parent:
            raise CongruenceError(f"two recordings named {parsed.recording} ({folders[parsed.recording]} and "
                                  f"{path.parent}); pass --wavfiles or rename one")
        folders[parsed.recording] = path.parent
        tables.setdefault(parsed.tag, []).append(read_intervals_csv(path))
    which = f" for {', '.join(sorted(wavfiles))}" if wavfiles else ""
    unknown = sorted(set(annotators or ()) - present)
    if unknown:
        raise CongruenceError(f"{basepath}: no <wav>-annotated-<name>.csv files of --annotators {unknown}{which}; "
                              f"the annotators there are {sorted(present) or 'none'}")
    if not tables:
        raise CongruenceError(f"{basepath}: no <wav>-annotated-<name>.csv files{which}; dense annotations "
                              f"are needed (rename each person's file to <wav>-annotated-<person>.csv)")
    return {name: concat_intervals(frames) for name, frames in tables.items()}, folders


def _predictions(folders: dict[str, Path], choice: str | None):
    from songexplorer_core.ethogram import find_predicted_csvs

    tables, recordings = [], []
    for wav, folder in folders.items():
        found = find_predicted_csvs(folder, wav)
        if not found:
            continue  # congruence() names the recordings without predictions
        if choice is not None:
            key = next((k for k in found if k is not None and (k == choice or _same(k, choice))), None)
            if key is None:
                raise CongruenceError(f"{folder}: no {wav}-predicted-{choice}pr.csv; there are "
                                      f"{', '.join(p.name for p in found.values())}")
        elif len(found) == 1:
            key = next(iter(found))
        elif None in found:
            key = None
        else:
            raise CongruenceError(f"{folder}: several predictions for {wav} "
                                  f"({', '.join(p.name for p in found.values())}); choose one with --predicted")
        tables.append(read_intervals_csv(found[key]))
        recordings.append(wav)
    return (concat_intervals(tables) if tables else None), recordings


def _same(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def _ethogram_log(folders: dict[str, Path]) -> dict[str, str]:
    """The ``logdir``/``model``/``thresholds_file`` lines of the first ``<wav>-ethogram.log``."""
    for wav, folder in folders.items():
        log = folder / f"{wav}-ethogram.log"
        if log.exists():
            fields = {}
            for line in log.read_text(encoding="utf-8").splitlines():
                key, _, value = line.partition(": ")
                if key in ("logdir", "model", "thresholds_file"):
                    fields[key] = value.strip()
            return fields
    return {}


def _rate(args, folders: dict[str, Path], *, required: bool = True) -> int | None:
    """--audio-tic-rate, else the rate of the recordings' WAVs (None if unknown and not required)."""
    if args.audio_tic_rate:
        return int(args.audio_tic_rate)
    from songexplorer_core.audio import recording_info

    rates = {recording_info(folder / wav).rate for wav, folder in folders.items() if (folder / wav).exists()}
    if len(rates) > 1 or (required and not rates):
        raise CongruenceError("cannot tell the tic rate from the recordings' WAVs "
                              f"({'none found' if not rates else f'rates {sorted(rates)}'}); pass --audio-tic-rate")
    return rates.pop() if rates else None


def run(args) -> int:
    basepath = Path(args.basepath).resolve()
    if not basepath.is_dir():
        raise FileNotFoundError(f"{basepath}: no such ground-truth folder")
    wavfiles = _split(args.wavfiles)
    wavfiles = None if wavfiles is None else {Path(w).name for w in wavfiles}
    annotations, folders = _dense_annotations(basepath, wavfiles, _split(args.annotators))
    predictions, recordings = _predictions(folders, args.predicted)
    if predictions is None:
        raise CongruenceError(f"none of the annotated recordings ({', '.join(sorted(folders))}) has a "
                              f"<wav>-predicted.csv beside it; run the ethogram on them first")
    convolve_rate = _rate(args, folders) if args.convolve_sec else (args.audio_tic_rate or 2500)
    settings = dict(labels=_split(args.labels), portion=args.portion, convolve_s=args.convolve_sec,
                    measure=args.measure, span=args.span, absent_annotators=args.absent_annotators)

    timestamp = time.strftime("%Y%m%dT%H%M%S")
    topath = Path(args.topath) if args.topath else basepath / f"congruence-{timestamp}"
    log = _ethogram_log(folders)
    sparse, checkpoint, model_dir = None, None, None
    if log.get("logdir") and log.get("model"):
        model_dir = Path(log["logdir"]) / log["model"]
        thresholds_file = model_dir / log.get("thresholds_file", "")
        if thresholds_file.is_file():
            from songexplorer_core.ethogram import read_thresholds_csv

            sparse = read_thresholds_csv(thresholds_file)
        match = re.search(r"ckpt-(\d+)", log.get("thresholds_file", ""))
        checkpoint = match.group(1) if match else None
    target = model_dir if model_dir is not None and model_dir.is_dir() else topath
    labels_file = target / "labels.txt"
    order = read_labels_txt(labels_file) if labels_file.is_file() else None
    bar = []

    def progress(_):
        if not bar:
            bar.append(tqdm(total=args.nprobabilities, desc="congruence sweep", unit="threshold",
                            disable=args.no_progress, file=sys.stderr, leave=False))
        bar[0].update(1)

    try:
        report = congruence_report(
            annotations, predictions, topath, recordings=recordings, rate=convolve_rate,
            probabilities=lambda result: _probabilities(args, folders, result), nprobabilities=args.nprobabilities,
            error_ratio=args.error_ratio, thresholds_folder=target, timestamp=timestamp, checkpoint=checkpoint,
            label_order=order, sparse_thresholds=sparse, plots=not args.no_plots, progress=progress,
            recording_folders={wav: topath / folder.relative_to(basepath) for wav, folder in folders.items()},
            **settings)
    finally:
        if bar:
            bar[0].close()
    ethogram, sweep, written = report.ethogram, report.sweep, report.written
    if report.left_out_of_sweep:
        print(f"songexplorer congruence: the probabilities have no output for {', '.join(report.left_out_of_sweep)}: "
              f"left out of the sweep", file=sys.stderr)
    if sweep is not None:
        for measure in sweep.measures:
            dense = sweep.dense_thresholds(args.error_ratio, measure=measure)
            print(f"dense thresholds ({measure}, P/R = {args.error_ratio}): "
                  + ", ".join(f"{label} {value:.3f}" for label, value in dense.items()))

    scores = ethogram.scores
    shown = scores[scores["reference"] == "songexplorer"]
    print(f"{len(ethogram.recordings)} recording(s), annotators {', '.join(ethogram.annotators)}, "
          f"portion {args.portion}, convolve {args.convolve_sec} s:")
    for row in shown.itertuples():
        print(f"  {row.label:>12} {row.measure:>5}: precision {row.precision:.3f}, recall {row.recall:.3f}, "
              f"F1 {row.f1:.3f} (TP {row.tp}, FP {row.fp}, FN {row.fn})")
    print(f"wrote {len(written)} file(s) to {topath}")
    return 0


def _probabilities(args, folders, ethogram):
    """``{recording: Probabilities}`` of the compared recordings for the sweep; ``None`` (with a
    note) when none has any."""
    from songexplorer_core.classify import probabilities_npz_name, read_probabilities
    from songexplorer_core.ethogram import load_probabilities

    rate = _rate(args, folders, required=False)
    probabilities, missing = {}, []
    for wav in ethogram.recordings:
        folder = Path(args.probabilities_dir) if args.probabilities_dir else folders[wav]
        try:
            if rate is None:  # no WAV to read the rate off: only the .npz (which records it) will do
                npz = folder / probabilities_npz_name(wav)
                if not npz.is_file():
                    raise FileNotFoundError(npz)
                probabilities[wav] = read_probabilities(npz)
            else:
                probabilities[wav] = load_probabilities(folder, wav, list(ethogram.labels), rate=rate)
        except FileNotFoundError:
            missing.append(wav)
    if missing and not probabilities:
        print(f"songexplorer congruence: no probabilities for {', '.join(missing)}: no threshold sweep "
              f"(classify the recordings, or pass --nprobabilities 0)", file=sys.stderr)
        return None
    if missing:
        raise CongruenceError(f"probabilities of {', '.join(missing)} are missing while others have them; "
                              f"classify them, or leave them out with --wavfiles")
    return probabilities
