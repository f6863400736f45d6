"""``songexplorer mistakes --groundtruth DIR --model CKPT --out-dir DIR``: annotated sounds the model gets wrong.

As SongExplorer's ``mistakes``: one 6-column ``<wav>-mistakes.csv`` per recording (``wav, start,
stop, correct|mistaken, <predicted label>, <annotated label>``), written under ``--out-dir`` in the
recording's sub-folder. The decision is the model's at the sound itself (SongExplorer's was 126
tics early). Either applies the model at every annotated sound, or (``--activations``) uses the
output stored in an activations file.
"""

from __future__ import annotations

from songexplorer_cli.options import (
    LabelsOption, add_compute_options, configure_compute_from, fraction, positive_int, progress_bar,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "mistakes",
        help="mark every annotated sound correct or mistaken by a model -> <wav>-mistakes.csv",
        description="Apply a trained model at every annotated sound below --groundtruth (or read its output "
        "from --activations) and write, per recording, SongExplorer's <wav>-mistakes.csv: wav, start, stop, "
        "correct|mistaken, the predicted label, the annotated label. Exclusive models predict the label with "
        "the largest output; overlapped models say a label is present at probability >= --threshold.",
    )
    parser.add_argument("--groundtruth", metavar="DIR",
                        help="ground-truth folder: interval CSVs (any depth) beside the recordings they name")
    parser.add_argument("--model", metavar="CKPT_DIR", help="trained-model folder (model.keras + model.json)")
    parser.add_argument("--activations", metavar="FILE.npz",
                        help="use the output stored in this activations file instead of --groundtruth/--model "
                        "(only its sounds are judged: mind its equalize ratio and max sounds)")
    parser.add_argument("--out-dir", required=True, metavar="DIR",
                        help="where to write <subdir>/<wav>-mistakes.csv")
    parser.add_argument("--kinds", default="annotated", metavar="K1,K2",
                        help="kinds of intervals judged (default %(default)s)")
    parser.add_argument("--labels", default="", metavar="A,B", action=LabelsOption,
                        help="labels judged (default: every label the model outputs, and not_<label> for "
                        "overlapped models)")
    parser.add_argument("--threshold", type=fraction, default=0.5,
                        help="overlapped models: probability at which a label counts as present (default %(default)s)")
    parser.add_argument("--mini-batch", type=positive_int, default=256, metavar="N", help="sounds per network call")
    add_compute_options(parser)
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from songexplorer_core.mistakes import MISTAKEN, mistakes_table, write_mistakes_csvs  # noqa: PLC0415

    if args.activations:
        if args.groundtruth or args.model:
            raise ValueError("give either --activations, or --groundtruth and --model, not both")
        from songexplorer_core.activations import read_activations  # noqa: PLC0415

        acts = read_activations(args.activations)
        kinds = [k for k in args.kinds.split(",") if k]
        labels = [x for x in args.labels.split(",") if x]
        keep = acts.sounds["kind"].isin(kinds) & (acts.sounds["label"].isin(labels) if labels else True)
        if not keep.any():
            raise ValueError(f"{args.activations}: holds no sounds of kind(s) {kinds}"
                             f"{f' with label(s) {labels}' if labels else ''}; compute activations of annotated "
                             f"sounds, or use --groundtruth and --model")
        acts.sounds = acts.sounds[keep.to_numpy()].reset_index(drop=True)
        acts.logits = acts.logits[keep.to_numpy()]
        acts.layers = {}
        table = mistakes_table(acts, threshold=args.threshold)
    else:
        if not (args.groundtruth and args.model):
            raise ValueError("give --groundtruth and --model (or --activations FILE)")

        configure_compute_from(args)
        from songexplorer_core.mistakes import find_mistakes  # noqa: PLC0415
        from songexplorer_core.models import load_trained_model  # noqa: PLC0415

        trained = load_trained_model(args.model)
        bar, progress = progress_bar("mistakes", "sound", disable=args.no_progress)

        try:
            table = find_mistakes(trained, args.groundtruth, kinds=[k for k in args.kinds.split(",") if k],
                                  labels=[x for x in args.labels.split(",") if x] or None,
                                  threshold=args.threshold, mini_batch=args.mini_batch, progress=progress)
        finally:
            bar.close()
    written = write_mistakes_csvs(table, args.out_dir)
    for recording, rows in table.groupby("recording", sort=True):
        mistaken = int((rows["kind"] == MISTAKEN).sum())
        print(f"{recording}: {mistaken} of {len(rows)} mistaken")
    nmistaken = int((table["kind"] == MISTAKEN).sum())
    print(f"{nmistaken} of {len(table)} sound(s) mistaken ({100 * nmistaken / max(len(table), 1):.1f}%); wrote "
          f"{', '.join(str(p) for p in written)}")
    return 0
