"""Model studies (docs/studies.md): ``songexplorer xvalidate``, ``generalize``, ``sweep``,
``replicates``, ``learning-curve`` (each with every ``train`` flag, ``--out STUDY_DIR``,
``--workers N``, ``--mlflow URI``), ``songexplorer ensemble``, ``songexplorer compare STUDY_DIR``
and ``songexplorer delete-ckpts DIR``.

A study's trainings run side by side in processes (``--workers``, default: the cores divided by
two threads each); its summary and comparison plots are written into ``STUDY_DIR`` and, with a
tracking store (``--mlflow``, or the project's when ``--groundtruth`` lies in a project), logged
as a parent MLflow run with one child run per training. Bad input (too many folds, a fold
without a label, an unknown parameter, mismatched ensemble members) is refused before anything
is written.
"""

from __future__ import annotations

import argparse
import sys

from songexplorer_cli import train as train_command
from songexplorer_cli.options import tracking_from

STUDY_COMMANDS = ("xvalidate", "generalize", "sweep", "replicates", "learning-curve")


def _train_parser() -> argparse.ArgumentParser:
    """``songexplorer train``'s parser, as a parent: every training flag, the same defaults."""
    holder = argparse.ArgumentParser(add_help=False)
    train_command.register(holder.add_subparsers())
    return holder._subparsers._group_actions[0].choices["train"]  # noqa: SLF001 (argparse keeps them there)


def _add_study_options(parser) -> None:
    group = parser.add_argument_group("study")
    group.add_argument("--workers", type=int, default=None,
                       help="trainings side by side (default: the cores divided by --threads, at least 2 each)")
    group.add_argument("--mlflow", default=None, metavar="URI|DIR",
                       help="tracking store for the parent run and a child run per training: an MLflow URI or a "
                       "folder (SQLite store and artifacts inside); default the project's when --groundtruth is "
                       "in a project")
    group.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    group.add_argument("--ratios", default="1.0", metavar="R1,R2", help="precision/recall ratios of the thresholds")


def register(subparsers) -> None:
    train_parser = _train_parser()
    helps = {
        "xvalidate": "k-fold cross-validation on SongExplorer's stable split (negative k trains on one fold)",
        "generalize": "withhold whole recordings: each in turn, all but one, or round-robin groups",
        "sweep": "train on every combination of the values of some parameters (--vary NAME=V1,V2)",
        "replicates": "the same training with --nreplicates seeds, as side-by-side runs",
        "learning-curve": "train on growing fractions of the annotations (when to stop annotating)",
    }
    for name in STUDY_COMMANDS:
        parser = subparsers.add_parser(
            name, parents=[train_parser], conflict_handler="resolve", help=helps[name] + " (docs/studies.md)",
            description=helps[name] + ". Every `songexplorer train` flag sets the base training; --out is "
            "the study folder (one subfolder per training, summary-*.csv, compare-*.png).",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if name in ("xvalidate", "sweep"):
            parser.add_argument("--folds", type=int, required=name == "xvalidate", default=None, metavar="K",
                                help="folds (negative: train on one fold, validate on the rest)"
                                + ("; with a sweep, every setting is x-validated" if name == "sweep" else ""))
        if name == "generalize":
            parser.add_argument("--omit", choices=("one", "all-but-one"), default="one",
                                help="withhold each recording in turn, or train on one recording at a time")
            parser.add_argument("--groups", type=int, default=None, metavar="K",
                                help="withhold recordings in K round-robin groups instead")
        if name == "sweep":
            parser.add_argument("--vary", action="append", required=True, metavar="NAME=V1,V2",
                                help="a parameter and its values (repeat for a grid; ';' separates values that hold "
                                "commas, e.g. kernel_sizes=5x5,3;3x3,3); names: TrainConfig settings, model.<field>, "
                                "augmentation.<field>")
        if name == "learning-curve":
            parser.add_argument("--fractions", default="0.1,0.2,0.4,0.7,1.0", metavar="F1,F2",
                                help="fractions of the training annotations (validation is unchanged)")
        _add_study_options(parser)
        parser.set_defaults(func=run_study_command, study=name)

    ensemble = subparsers.add_parser(
        "ensemble", help="combine trained models into one that averages their probabilities (docs/studies.md)",
        description="Combine the models of a study (folds, replicates), logs folders or training folders into one "
        "model folder whose network averages their probabilities, with thresholds from its own validation "
        "predictions. Usable by classify and ethogram like any model (OUT/model).")
    ensemble.add_argument("models", nargs="+", metavar="DIR", help="study, logs (train_<r>r/) or training folders")
    ensemble.add_argument("--out", required=True, metavar="DIR", help="the ensemble folder to create")
    ensemble.add_argument("--groundtruth", default=None, metavar="DIR",
                          help="the ground truth the members were trained on (default: the study's)")
    ensemble.add_argument("--ratios", default="1.0", metavar="R1,R2", help="precision/recall ratios of the thresholds")
    ensemble.add_argument("--mlflow", default=None, metavar="URI|DIR",
                          help="log the ensemble as a run and register it as a model version there")
    ensemble.set_defaults(func=run_ensemble)

    compare = subparsers.add_parser("compare", help="(re)draw a study's summary and comparison plots",
                                    description="Rewrite STUDY_DIR's summary-*.csv and compare-*.png from its "
                                    "finished trainings.")
    compare.add_argument("study_dir", metavar="STUDY_DIR")
    compare.set_defaults(func=run_compare)

    delete = subparsers.add_parser(
        "delete-ckpts", help="delete checkpoints but the best and the last of each training",
        description="In every training folder below DIR keep the last checkpoint, the one with the best "
        "validation F1 and the one a study or bundle chose; delete the other ckpt-<N>/ folders and say what "
        "that freed. --keep-runs N also keeps only the newest N runs of a project's outputs/models/.")
    delete.add_argument("folder", metavar="DIR")
    delete.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    delete.add_argument("--keep-runs", type=int, default=None, metavar="N",
                        help="DIR is outputs/models/: keep its newest N runs (and latest.json's)")
    delete.set_defaults(func=run_delete_ckpts)


def _ratios(text: str) -> tuple[float, ...]:
    from songexplorer_core.accuracy import iter_ratios

    return iter_ratios(text)


def plan_from_args(args):
    """The base ``TrainConfig`` and the trials the flags describe (nothing written)."""
    from songexplorer_core import studies as S

    base = train_command.config_from_args(args)
    truth = args.groundtruth
    if args.study == "xvalidate":
        trials = S.xvalidate(truth, base, args.folds)
    elif args.study == "generalize":
        trials = S.generalize(truth, base, omit=args.omit, groups=args.groups)
    elif args.study == "replicates":
        trials = S.replicates(base, base.nreplicates)
    elif args.study == "learning-curve":
        fractions = [float(x) for x in args.fractions.split(",") if x.strip()]
        trials = S.learning_curve(truth, base, fractions)
    else:
        trials = S.sweep(base, S.parse_vary(args.vary))
        if args.folds is not None:
            trials = S.compose(trials, lambda config: S.xvalidate(truth, config, args.folds))
    return base, trials


def run_study_command(args) -> int:
    from tqdm import tqdm

    from songexplorer_core import studies as S

    base, trials = plan_from_args(args)  # refuses bad input before anything is written
    tracking = tracking_from(args.mlflow, args.groundtruth, args.no_mlflow)
    from songexplorer_core.studies.run import read_trial_result

    todo = [t for t in trials if read_trial_result(args.out, t.name) is None]
    workers = S.default_workers(len(todo), args.threads) if args.workers is None else args.workers
    print(f"{args.study}: {len(trials)} trainings ({len(trials) - len(todo)} done already), {workers} side by side, "
          f"-> {args.out}" + (f"; MLflow {tracking.tracking_uri}" if tracking else ""), file=sys.stderr)
    total = sum(t.config.nsteps for t in trials)
    steps = {t.name: t.config.nsteps for t in trials if t not in todo}
    bar = None if args.no_progress else tqdm(total=total, unit="step", desc=args.study, file=sys.stderr)

    def progress(p) -> None:
        steps[p.trial] = p.step
        if bar is not None:
            bar.n = sum(steps.values())
            bar.set_postfix({"done": f"{p.done}/{p.total}"}, refresh=False)
            bar.refresh()

    device = args.device  # each worker process configures TensorFlow itself
    if workers <= 1:
        train_command.configure_compute_from(args)
    try:
        result = S.run_study(args.groundtruth, trials, args.out, kind=args.study, base=base, tracking=tracking,
                             ratios=_ratios(args.ratios), workers=workers, device=device, threads=args.threads,
                             progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(result.summary.per_label_text())
    print(f"{len(result.results)} trainings in {result.wall_seconds:.1f} s; summary and plots in {result.study_dir}"
          + (f"; MLflow parent run {result.run_url}" if result.run_url else ""))
    return 0


def run_ensemble(args) -> int:
    from songexplorer_core.compute import configure_compute
    from songexplorer_core.studies import make_ensemble

    configure_compute("cpu")
    made = make_ensemble(args.models, args.out, ground_truth=args.groundtruth, ratios=_ratios(args.ratios))
    best = made.report.best
    print(f"{args.out}: ensemble of {len(made.members)} models; validation ({made.validation['method']}, "
          f"{made.validation['examples']} annotations) F1 " +
          ", ".join(f"{label} {best.f1[i]:.3f}" for i, label in enumerate(best.labels)))
    print(f"classify with: songexplorer classify --model {made.bundle} ...; thresholds "
          f"{made.bundle / 'thresholds.ckpt-0.csv'}")
    tracking = tracking_from(args.mlflow, args.groundtruth)
    if tracking is not None:
        from songexplorer_core.studies.study import log_ensemble

        tracked = log_ensemble(tracking, made)
        print(f"registered as version {tracked.version} of {tracking.registered_model} (champion: "
              f"{tracked.champion_version}; promote it with the promotion gate or by pinning); run {tracked.run_url}")
    return 0


def run_compare(args) -> int:
    from songexplorer_core.studies import compare

    summary = compare(args.study_dir)
    print(summary.per_label_text())
    for path in summary.files:
        print(path)
    return 0


def run_delete_ckpts(args) -> int:
    from songexplorer_core.studies import delete_ckpts, retain_model_runs

    verb = "would free" if args.dry_run else "freed"
    if args.keep_runs is not None:
        freed = retain_model_runs(args.folder, args.keep_runs, dry_run=args.dry_run)
        print(f"{len(freed.removed)} run folder(s) {'to delete' if args.dry_run else 'deleted'}, "
              f"{len(freed.kept)} kept; {verb} {freed.bytes / 1e6:.1f} MB")
    freed = delete_ckpts(args.folder, dry_run=args.dry_run)
    for path in freed.removed:
        print(f"{'would delete' if args.dry_run else 'deleted'} {path}")
    print(f"{len(freed.removed)} checkpoint(s) {'to delete' if args.dry_run else 'deleted'}, {len(freed.kept)} kept; "
          f"{verb} {freed.bytes / 1e6:.1f} MB")
    return 0
