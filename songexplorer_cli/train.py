"""``songexplorer train --groundtruth DIR --out DIR --labels A,B,C ...``: train classifiers.

Flags are named after SongExplorer's parameters (``--nsteps``, ``--validate-period``,
``--validate-percentage``, ``--mini-batch``, ``--batch-seed``, ``--weights-seed``, the
architecture's ``--representation``, ``--kernel-sizes``, ...). Replicate r is written to
``OUT/train_<r>r/`` (checkpoints ``ckpt-<N>/``, ``validation.ckpt-<N>.npz``, ``history.csv``,
``labels.txt``, ``train.log``); running the same command again resumes an interrupted training
(with other hyperparameters only given ``--allow-changed-hyperparameters``). A second training
into the same ``--out`` is refused while the first runs (the lock names it).

Transfer learning: ``--start-from MODEL`` (a model folder, or ``models:/NAME/VERSION``,
``models:/NAME@champion``, ``runs:/RUN_ID`` in the ``--mlflow`` store, downloaded into
``OUT/parent/``) starts from that model's layers with a new output layer for ``--labels``, on the
parent's network (``--dropout`` may change); ``--train-layers`` or ``--freeze`` choose which
layers change (``--list-layers`` prints them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from songexplorer_cli.options import (
    add_audio_options,
    LabelsOption, add_compute_options, configure_compute_from, nonnegative_int, percentage, positive_float,
    positive_int, signed_percentage,
)
from songexplorer_core.dataset import Augmentation
from songexplorer_core.recipes import RECIPE_NAMES, named_recipe_config
from songexplorer_core.models import (
    CONNECTIONS,
    DROPOUT_KINDS,
    NORMALIZATIONS,
    POOL_KINDS,
    REPRESENTATIONS,
    ModelSpec,
)

_SPEC = ModelSpec()


def _seed(text: str) -> int | None:
    value = int(text)
    return None if value == -1 else value


def add_architecture_options(parser) -> None:
    """The network's flags (SongExplorer's convolutional network; ``songexplorer train``, ``autoencode``)."""
    arch = parser.add_argument_group("architecture (SongExplorer's convolutional / res-net network)")
    arch.add_argument("--architecture", default=_SPEC.architecture, help="registered architecture")
    arch.add_argument("--context", type=positive_float, default=_SPEC.context_ms, metavar="MS",
                      help="audio seen per decision, ms")
    arch.add_argument("--shiftby", type=float, default=_SPEC.shiftby_ms, metavar="MS",
                      help="labelled point this far after the window's centre, ms")
    arch.add_argument("--representation", choices=REPRESENTATIONS, default=_SPEC.representation,
                      help="input representation")
    arch.add_argument("--window", type=positive_float, default=_SPEC.window_ms, metavar="MS",
                      help="STFT window, ms (a power of two in tics)")
    arch.add_argument("--stride", type=positive_float, default=_SPEC.stride_ms, metavar="MS", help="STFT hop, ms")
    arch.add_argument("--mel-dct", default="7,7", metavar="MEL,DCT", help="mel filters, DCT coefficients kept")
    arch.add_argument("--range", default="", metavar="LO-HI", help="spectrogram band kept, Hz (blank = all)")
    arch.add_argument("--nconvlayers", type=nonnegative_int, default=_SPEC.nconvlayers, help="maximum conv layers")
    arch.add_argument("--kernel-sizes", default="5x5,3", metavar="TxF,T",
                      help="2-D kernel (time x freq), then the pan-frequency kernel's width")
    arch.add_argument("--nfeatures", default="64,64", metavar="N2D,N1D", help="feature maps of the two stages")
    arch.add_argument("--stride-time", default="", metavar="LAYERS",
                      help="conv layers (1-based: 1,3 or 1-3 or >=2) with stride 2 in time")
    arch.add_argument("--stride-freq", default="", metavar="LAYERS", help="conv layers with stride 2 in frequency")
    arch.add_argument("--dilate-time", default="", metavar="LAYERS", help="conv layers from which time dilation doubles")
    arch.add_argument("--dilate-freq", default="", metavar="LAYERS",
                      help="conv layers from which frequency dilation doubles")
    arch.add_argument("--pool-kind", choices=POOL_KINDS, default=_SPEC.pool_kind, help="pooling after the convs")
    arch.add_argument("--pool-size", default="2,2", metavar="T,F", help="pool size (= stride)")
    arch.add_argument("--denselayers", default="", metavar="U1,U2", help="units of extra dense layers")
    arch.add_argument("--connection", choices=CONNECTIONS, default=_SPEC.connection, help="plain or residual")
    arch.add_argument("--dropout", type=percentage, default=None, metavar="PCT",
                      help="dropout percent after the convs and between dense layers; recipe: 20, tutorial 50")
    arch.add_argument("--dropout-kind", choices=DROPOUT_KINDS, default=_SPEC.dropout_kind,
                      help="unit: drop single activations; map: drop whole feature maps")
    arch.add_argument("--normalization", choices=NORMALIZATIONS, default=_SPEC.normalization,
                      help="batch normalisation before or after each ReLU")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a classifier on annotated recordings",
        description="Train SongExplorer's convolutional classifier on the annotations (interval CSVs) "
        "below --groundtruth. Annotations are split into training and validation sets by SongExplorer's "
        "stable hash; every --validate-period steps the model is checkpointed and validated. Run the same "
        "command again to resume an interrupted training, or with a larger --nsteps to extend it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("ground truth")
    data.add_argument("--groundtruth", required=True, metavar="DIR",
                      help="folder holding recordings (WAV) and their annotation CSVs, at any depth")
    data.add_argument("--out", required=True, metavar="DIR",
                      help="logs folder: replicate r is written to DIR/train_<r>r/")
    data.add_argument("--labels", required=True, metavar="A,B,C", action=LabelsOption,
                      help="labels to use, in output order (e.g. mel-pulse,mel-sine,ambient)")
    data.add_argument("--kinds", default="annotated", metavar="K1,K2",
                      help="kinds of intervals to use (annotated, detected, predicted, missed, correct, mistaken)")
    data.add_argument("--validate-percentage", type=signed_percentage, default=40.0, metavar="PCT",
                      help="percent of annotations held out for validation (SongExplorer's stable hash split)")
    data.add_argument("--validation-offset-percentage", type=percentage, default=0.0, metavar="PCT",
                      help="where the validation slice starts (cross-validation folds)")
    data.add_argument("--testing-percentage", type=percentage, default=0.0, metavar="PCT",
                      help="percent of annotations held out for testing")
    data.add_argument("--validation-files", default="", metavar="A.wav,B.wav",
                      help="recordings (basenames) used whole for validation")
    data.add_argument("--testing-files", default="", metavar="A.wav,B.wav",
                      help="recordings (basenames) used whole for testing")
    data.add_argument("--audio-tic-rate", type=positive_int, default=None, metavar="HZ",
                      help="sample rate every recording must have (default: that of the first recording)")
    data.add_argument("--audio-nchannels", type=positive_int, default=None, metavar="N",
                      help="channels every recording must have (default: those of the first recording)")
    data.add_argument("--no-equalize", action="store_true",
                      help="draw training annotations uniformly instead of balancing (label, kind) groups")

    loop = parser.add_argument_group(
        "training", "Flags left out take the --recipe's value: 'default' is this project's recipe (chosen on "
        "dense truth, docs/recipe.md), 'tutorial' SongExplorer's tutorial settings.")
    loop.add_argument("--recipe", choices=RECIPE_NAMES, default="default",
                      help="the settings flags left out take: default or tutorial")
    loop.add_argument("--nsteps", type=nonnegative_int, default=None, help="training steps (mini-batches); recipe: 1000, tutorial 300")
    loop.add_argument("--validate-period", type=nonnegative_int, default=None,
                      help="validate (and checkpoint) every this many steps, 0 = only at the end; recipe: 1000, "
                      "tutorial 30")
    loop.add_argument("--save-period", type=positive_int, default=None,
                      help="checkpoint every this many steps; recipe: 100, tutorial: the validate period")
    loop.add_argument("--mini-batch", type=positive_int, default=32, help="examples per step")
    loop.add_argument("--learning-rate", type=positive_float, default=None,
                      help="optimizer learning rate; recipe: 0.001, tutorial 0.0002; with --start-from the "
                           "recipe's times 0.2")
    loop.add_argument("--optimizer", default="Adam",
                      choices=["Adadelta", "Adagrad", "Adam", "Adamax", "Ftrl", "Nadam", "RMSprop", "SGD"],
                      help="Keras optimizer with its default hyper-parameters")
    loop.add_argument("--loss", default="exclusive", choices=["exclusive", "overlapped"],
                      help="exclusive: one label per tap (softmax); overlapped: each label present or absent "
                      "(sigmoid), absence annotated as <prefix><label>")
    loop.add_argument("--overlapped-prefix", default="not_", action=LabelsOption, single=True,
                      help="prefix marking a label's absence (overlapped)")
    loop.add_argument("--negatives", action=argparse.BooleanOptionalAction, default=None,
                      help="exclusive loss: learn from <prefix><label> ranges (SongExplorer's notsong CSVs) as "
                      "sounds that are not that label; recipe: on, tutorial off (SongExplorer ignores them)")
    loop.add_argument("--parallelize", type=positive_int, default=None,
                      help="output taps per training example; recipe: 8, tutorial 2")
    loop.add_argument("--batch-seed", type=_seed, default=1,
                      help="seed of which annotations are drawn and augmentation; -1 = random")
    loop.add_argument("--weights-seed", type=_seed, default=1, help="seed of the initial weights; -1 = random")
    loop.add_argument("--nreplicates", type=positive_int, default=1, help="models trained with these settings")
    loop.add_argument("--allow-changed-hyperparameters", action="store_true",
                      help="resume a training in --out even though its learning rate, mini-batch, seeds, "
                      "equalizing or augmentation differ from those it started with (refused otherwise)")
    add_compute_options(loop)

    transfer = parser.add_argument_group(
        "transfer learning", "Start from another model's layers (its network; a new output layer when the labels "
        "differ). Layers with weights: conv1, conv2, ... (batchnormK with batch normalisation), dense1, ..., output.")
    transfer.add_argument("--start-from", default=None, metavar="MODEL",
                          help="a trained-model folder (a checkpoint, a training's logs or model folder, an "
                          "autoencoder's folder) or an MLflow model: models:/NAME/VERSION, models:/NAME@ALIAS, "
                          "runs:/RUN_ID (downloaded into OUT/parent/)")
    transfer.add_argument("--train-layers", default="", metavar="L1,L2",
                          help="layers to train (e.g. output, or conv2,output); the others keep the parent's weights; "
                          "default all")
    transfer.add_argument("--freeze", type=nonnegative_int, default=0, metavar="N",
                          help="keep the first N layers with weights as the parent's")
    transfer.add_argument("--list-layers", action="store_true",
                          help="print the --start-from model's layers with weights and exit")
    transfer.add_argument("--mlflow", default=None, metavar="URI|DIR",
                          help="tracking store of an MLflow --start-from: an MLflow URI or a folder; default the "
                          "project's when --groundtruth is in a project")

    add_architecture_options(parser)

    aug = parser.add_argument_group("augmentation (training batches only)")
    aug.add_argument("--augment-volume", default="1,1", metavar="LO,HI", help="gain range")
    aug.add_argument("--augment-noise", default="0,0", metavar="LO,HI", help="noise s.d. range (full scale = 1)")
    aug.add_argument("--augment-dc", default="0,0", metavar="LO,HI", help="DC offset range (full scale = 1)")
    aug.add_argument("--augment-reverse", choices=("yes", "no"), default="no", help="time-reverse half the examples")
    aug.add_argument("--augment-invert", choices=("yes", "no"), default="no", help="invert half the examples")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    add_audio_options(parser)
    parser.set_defaults(func=run)


def spec_from_args(args, dropout_rate: float) -> ModelSpec:
    """The :class:`~songexplorer_core.models.ModelSpec` the architecture flags describe."""
    return ModelSpec(
        architecture=args.architecture, representation=args.representation, window_ms=args.window,
        stride_ms=args.stride, mel_dct=args.mel_dct, range_hz=args.range or None, nconvlayers=args.nconvlayers,
        kernel_sizes=args.kernel_sizes, nfeatures=args.nfeatures, stride_time=args.stride_time,
        stride_freq=args.stride_freq, dilate_time=args.dilate_time, dilate_freq=args.dilate_freq,
        pool_kind=args.pool_kind, pool_size=args.pool_size, denselayers=args.denselayers,
        connection=args.connection, dropout_kind=args.dropout_kind, dropout_rate=dropout_rate,
        normalization=args.normalization, context_ms=args.context, shiftby_ms=args.shiftby)


def config_from_args(args, parent_folder=None):
    """The :class:`~songexplorer_core.train.TrainConfig` the flags describe: the ``--recipe``'s
    settings, with every flag given replacing its own. With ``--start-from`` the network is the
    parent's (``parent_folder``: where an MLflow parent was downloaded; a folder is used as given)."""
    from songexplorer_core.train import TrainConfig  # noqa: PLC0415

    recipe = named_recipe_config(args.recipe, args.labels)

    def given(value, recipe_value):
        return recipe_value if value is None else value

    spec = spec_from_args(args, recipe.model.dropout_rate if args.dropout is None else args.dropout / 100.0)
    start = getattr(args, "start_from", None)
    if start:
        from songexplorer_core import transfer  # noqa: PLC0415

        if parent_folder is None:
            if transfer.is_mlflow_uri(start):
                raise transfer.TransferError(f"{start}: here --start-from takes a model folder; `songexplorer train "
                                             f"--start-from {start}` downloads it into OUT/parent/")
            parent_folder = transfer.model_folder(start)
        spec = transfer.parent_spec(parent_folder, dropout_rate=None if args.dropout is None else args.dropout / 100.0)
        start = str(parent_folder)
    augmentation = Augmentation(volume=args.augment_volume, noise=args.augment_noise, dc=args.augment_dc,
                                reverse=args.augment_reverse, invert=args.augment_invert)
    learning_rate = given(args.learning_rate, recipe.learning_rate)
    if start and args.learning_rate is None:  # fine-tuning: a fraction of the recipe's (transfer.py)
        from songexplorer_core.transfer import FINE_TUNE_LEARNING_RATE_FACTOR  # noqa: PLC0415

        learning_rate *= FINE_TUNE_LEARNING_RATE_FACTOR
    return TrainConfig(
        labels_to_use=args.labels, kinds_to_use=args.kinds, model=spec,
        parallelize=given(args.parallelize, recipe.parallelize), optimizer=args.optimizer,
        learning_rate=learning_rate, nsteps=given(args.nsteps, recipe.nsteps),
        validate_period=given(args.validate_period, recipe.validate_period),
        # the tutorial checkpoints at its validations; an explicit --validate-period keeps that
        save_period=args.save_period if args.save_period is not None or args.validate_period is not None
        else recipe.save_period,
        validate_percentage=args.validate_percentage, validation_offset_percentage=args.validation_offset_percentage,
        testing_percentage=args.testing_percentage, validation_files=args.validation_files,
        testing_files=args.testing_files, mini_batch=args.mini_batch, batch_seed=args.batch_seed,
        weights_seed=args.weights_seed, loss=args.loss, overlapped_prefix=args.overlapped_prefix,
        negatives=given(args.negatives, recipe.negatives), augmentation=augmentation, equalize=not args.no_equalize, nreplicates=args.nreplicates,
        rate=args.audio_tic_rate, nchannels=args.audio_nchannels, start_from=start or None,
        train_layers=getattr(args, "train_layers", "") if start else "", freeze=getattr(args, "freeze", 0) if start else 0)


def _parent(args):
    """``--start-from``'s model folder (an MLflow model downloaded into ``OUT/parent/``), or None."""
    if not args.start_from:
        return None
    from songexplorer_cli.options import tracking_from  # noqa: PLC0415
    from songexplorer_core import transfer  # noqa: PLC0415

    tracking = tracking_from(args.mlflow, args.groundtruth) if transfer.is_mlflow_uri(args.start_from) else None
    parent = transfer.resolve_parent(args.start_from, tracking=tracking, dst=Path(args.out) / "parent")
    return parent.folder


def run(args) -> int:
    from tqdm import tqdm  # noqa: PLC0415

    parent = _parent(args)
    config = config_from_args(args, parent)  # check the settings before TensorFlow starts
    configure_compute_from(args)
    from songexplorer_core import train as T  # noqa: PLC0415

    if args.list_layers:
        if parent is None:
            print("--list-layers lists the layers of the --start-from model: give --start-from", file=sys.stderr)
            return 2
        from songexplorer_core import models as M  # noqa: PLC0415
        from songexplorer_core.transfer import weighted_layer_names  # noqa: PLC0415

        model = M.load_trained_model(parent)
        for layer in model.keras_model.layers:
            if layer.weights:
                shapes = " ".join("x".join(map(str, w.shape)) for w in layer.weights)
                print(f"{layer.name}\t{shapes}")
        print(f"{len(weighted_layer_names(model.keras_model))} layers with weights; labels "
              f"{','.join(model.labels)}, {model.rate} Hz", file=sys.stderr)
        return 0

    dataset = T.prepare_dataset(args.groundtruth, config)
    for note in dataset.notes:
        print(f"warning: {note}", file=sys.stderr)
    counts = {which: dataset.counts(which) for which in ("training", "validation", "testing")}
    print("annotations: " + "; ".join(f"{which} {sum(c.values())} ({', '.join(f'{k} {v}' for k, v in c.items())})"
                                      for which, c in counts.items() if c), file=sys.stderr)
    bar = None if args.no_progress else tqdm(total=config.nsteps * config.nreplicates, unit="step",
                                             desc="train", file=sys.stderr)
    last = {"validation": None}

    def progress(p) -> None:
        if bar is None:
            return
        if p.validation_accuracy is not None:
            last["validation"] = p.validation_accuracy
        bar.n = (p.replicate - 1) * p.nsteps + p.step
        postfix = {"replicate": f"{p.replicate}/{p.nreplicates}", "loss": f"{p.train_loss:.3f}",
                   "acc": f"{100 * p.train_accuracy:.0f}%"}
        if last["validation"] is not None:
            postfix["val"] = f"{100 * last['validation']:.1f}%"
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    try:
        result = T.train(args.groundtruth, config, args.out, progress=progress, dataset=dataset,
                         allow_changed_hyperparameters=args.allow_changed_hyperparameters)
    finally:
        if bar is not None:
            bar.close()
    for replicate in result.replicates:
        history = replicate.history.dropna(subset=["validation_accuracy"])
        final = history["validation_accuracy"].iloc[-1] if len(history) else float("nan")
        print(f"{replicate.model_dir}: checkpoints {replicate.checkpoint_steps[0]}..{replicate.checkpoint_steps[-1]}, "
              f"final validation accuracy {100 * final:.1f}%")
    return 0
