"""``songexplorer activations --groundtruth DIR --model CKPT --out FILE.npz``: a model's layers at sounds.

As SongExplorer's ``activations`` (parameters ``labels_touse``, ``kinds_touse``,
``testing_equalize_ratio``, ``testing_max_sounds``, ``mini_batch`` become ``--labels``,
``--kinds``, ``--equalize-ratio``, ``--max-sounds``, ``--mini-batch``), but each sound is seen
through the one context window centred on it (SongExplorer looked 126 tics early), sounds near a
recording's edge are padded rather than dropped, and only the chosen layers are stored.
"""

from __future__ import annotations

import sys

from songexplorer_cli.options import (
    add_audio_options,
    LabelsOption, add_compute_options, configure_compute_from, nonnegative_float, nonnegative_int, positive_float,
    positive_int, progress_bar,
)
from songexplorer_core.activations import (
    DEFAULT_EQUALIZE_RATIO,
    DEFAULT_MAX_SOUNDS,
    DEFAULT_MINI_BATCH,
    DTYPES,
    POSITIONS,
)


def _seed(text: str) -> int | None:
    value = int(text)
    return None if value == -1 else value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "activations",
        help="compute a model's hidden-layer activations at annotated/detected/... sounds (for cluster)",
        description="Apply a trained model at the sounds of the chosen kinds and labels below --groundtruth "
        "(interval CSVs beside their WAVs) and store its input, chosen hidden layers and output at each "
        "sound in one .npz for `songexplorer cluster` and `songexplorer mistakes`. Layers are numbered as "
        "in SongExplorer: 0 = input, then the hidden layers (representation, conv1, ... before their ReLU), "
        "last = output (logits).",
    )
    parser.add_argument("--groundtruth", required=True, metavar="DIR",
                        help="ground-truth folder: interval CSVs (any depth) beside the recordings they name")
    parser.add_argument("--model", required=True, metavar="CKPT_DIR",
                        help="trained-model folder, e.g. <train dir>/train_1r/ckpt-300 (model.keras + model.json)")
    parser.add_argument("--out", required=True, metavar="FILE.npz", help="where to write the activations")
    parser.add_argument("--kinds", default="annotated", metavar="K1,K2",
                        help="kinds of intervals to use, e.g. annotated,missed (SongExplorer's kinds_touse; "
                        "default %(default)s)")
    parser.add_argument("--labels", default="", metavar="A,B", action=LabelsOption,
                        help="labels to use, as written (SongExplorer's labels_touse; default: every label of "
                        "those kinds)")
    parser.add_argument("--equalize-ratio", type=nonnegative_float, default=DEFAULT_EQUALIZE_RATIO, metavar="R",
                        help="no (label, kind) group keeps more than R times the smallest group's sounds; "
                        "0 = keep all (SongExplorer's equalize ratio; default %(default)s)")
    parser.add_argument("--max-sounds", type=nonnegative_int, default=DEFAULT_MAX_SOUNDS, metavar="N",
                        help="then draw at most N sounds at random; 0 = no limit (default %(default)s)")
    parser.add_argument("--layers", default=None, metavar="L1,L2",
                        help="layers to store besides the output (always stored): indices, ranges like 1-3, "
                        "names like conv2, or 'all' (default: the last hidden layer)")
    parser.add_argument("--position", choices=POSITIONS, default="centre",
                        help="where in a sound its window is centred: its centre tic (start+stop)//2, or a "
                        "tic drawn uniformly from [start, stop] (default %(default)s)")
    parser.add_argument("--seed", type=_seed, default=0,
                        help="seeds equalizing, max sounds and random positions; -1 = different every time "
                        "(default %(default)s)")
    parser.add_argument("--mini-batch", type=positive_int, default=DEFAULT_MINI_BATCH, metavar="N",
                        help="sounds per network call (default %(default)s)")
    parser.add_argument("--dtype", choices=DTYPES, default="float16",
                        help="storage of hidden layers (float16 halves the file; a layer beyond float16's "
                        "range is kept float32; default %(default)s)")
    add_compute_options(parser)
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    add_audio_options(parser)
    parser.set_defaults(func=run)


def run(args) -> int:

    configure_compute_from(args)
    from songexplorer_core.activations import activations_from_ground_truth, write_activations  # noqa: PLC0415
    from songexplorer_core.models import load_trained_model  # noqa: PLC0415

    trained = load_trained_model(args.model)
    bar, progress = progress_bar("activations", "sound", disable=args.no_progress)

    try:
        acts = activations_from_ground_truth(
            trained, args.groundtruth, kinds=args.kinds, labels=args.labels or None,
            equalize_ratio=args.equalize_ratio, max_sounds=args.max_sounds, layers=args.layers,
            position=args.position, seed=args.seed, mini_batch=args.mini_batch, dtype=args.dtype, progress=progress)
    finally:
        bar.close()
    acts.settings["model"] = str(args.model)
    path = write_activations(acts, args.out)
    counts = acts.sounds.groupby(["kind", "label"]).size()
    padded = int(acts.sounds["padded"].sum())
    stored = ", ".join(f"{i} {acts.layer_names[i]}" for i in acts.stored_layers)
    print(f"{path}: {acts.nsounds} sounds ({', '.join(f'{k}/{lab} {n}' for (k, lab), n in counts.items())}); "
          f"layers {stored}; {acts.nbytes() / 1e6:.1f} MB")
    if padded:
        print(f"note: {padded} sound(s) lie within half a context of a recording's edge; their windows were "
              f"padded with the edge's median", file=sys.stderr)
    return 0
