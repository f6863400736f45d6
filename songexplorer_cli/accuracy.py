"""``songexplorer accuracy LOGDIR``: validation accuracy per checkpoint, the checkpoint kept, thresholds.

LOGDIR is one training folder (holding ``validation.ckpt-<N>.npz``) or a folder of them
(SongExplorer's ``train_1r``, ``xvalidate_1k``, ...). For each training folder it writes
``thresholds.ckpt-<N>.csv`` (and ``thresholds-<ratio>pr.ckpt-<N>.csv`` per ratio),
``accuracy.csv``, ``accuracy-labels.csv``, ``accuracy.json`` and PNG plots.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from tqdm import tqdm

from songexplorer_core.accuracy import CHECKPOINT_CHOICES, PLOTS, THRESHOLD_METHODS, AccuracyError, \
    accuracy_report, iter_ratios, model_folders, write_accuracy_outputs


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "accuracy",
        help="precision, recall and thresholds of each checkpoint on the validation set",
        description="Evaluate every validated checkpoint of a training run (SongExplorer's accuracy): "
        "confusion matrix, class-balanced precision/recall/F1 per label and overall, the checkpoint "
        "kept (the last, as SongExplorer's tutorial, or the highest F1), and per-label probability "
        "thresholds at the requested precision/recall ratios (SongExplorer's way by default).",
    )
    parser.add_argument("logdir", metavar="LOGDIR",
                        help="a training folder with validation.ckpt-<N>.npz files, or a folder of such folders")
    parser.add_argument("--error-ratio", default="1.0", metavar="R1,R2",
                        help="precision/recall ratio(s) to set thresholds for (SongExplorer's P/R): 1.0 = "
                        "equal, >1 favours precision; thresholds.ckpt-<N>.csv holds the first "
                        "(default %(default)s)")
    parser.add_argument("--out-dir", metavar="DIR",
                        help="where to write (default: each training folder itself; with several folders, "
                        "DIR/<folder name>)")
    parser.add_argument("--plots", choices=PLOTS, default="all",
                        help="PNG plots for every checkpoint ('all'), only the best ('best') or none "
                        "(default %(default)s)")
    parser.add_argument("--choose", choices=CHECKPOINT_CHOICES, default="last",
                        help="which checkpoint to keep: the last validated one (SongExplorer's tutorial) or the "
                        "highest overall F1 (default %(default)s; why: docs/recipe.md)")
    parser.add_argument("--threshold-method", choices=THRESHOLD_METHODS, default="songexplorer",
                        help="'songexplorer': the logistic of the logit at the ratio on a 20-point grid, as "
                        "SongExplorer; 'exact': on the probabilities themselves (default %(default)s; why: "
                        "docs/recipe.md)")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    ratios = iter_ratios(args.error_ratio)
    folders = model_folders(args.logdir)
    if not folders:
        raise AccuracyError(f"{args.logdir}: no validation.ckpt-<N>.npz files here or in its subfolders; "
                            f"train with a validation percentage above 0 first")
    for folder in folders:
        out_dir = folder if args.out_dir is None else (
            Path(args.out_dir) if len(folders) == 1 else Path(args.out_dir) / folder.name)
        bar = tqdm(desc=folder.name, unit="ckpt", disable=args.no_progress, file=sys.stderr, leave=False)

        def progress(done, total, bar=bar):
            bar.total = total
            bar.update(done - bar.n)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = accuracy_report(folder, ratios, progress=progress, choose=args.choose,
                                     threshold_method=args.threshold_method)
            bar.close()
            write_accuracy_outputs(report, out_dir, plots=args.plots)
        for warning in caught:
            if issubclass(warning.category, UserWarning):
                print(f"warning: {warning.message}", file=sys.stderr)
        best = report.best
        print(f"{folder}: {len(report.checkpoints)} checkpoint(s); kept ({args.choose}) ckpt-{best.checkpoint}: "
              f"precision {best.overall_precision:.3f}, recall {best.overall_recall:.3f}, F1 {best.overall_f1:.3f}")
        print(report.label_table().to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        print(f"-> {out_dir}/thresholds.ckpt-{best.checkpoint}.csv and accuracy.*")
    return 0
