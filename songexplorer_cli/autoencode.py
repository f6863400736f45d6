"""``songexplorer autoencode --recordings DIR --out DIR``: pre-train a network's convolutions as
an autoencoder on unannotated recordings (SongExplorer's ``autoencoder`` loss); then
``songexplorer train --start-from DIR`` starts a classifier from them (docs/training.md)."""

from __future__ import annotations

import argparse
import sys

from songexplorer_cli.options import add_audio_options, add_compute_options, configure_compute_from, nonnegative_int, \
    positive_float, positive_int
from songexplorer_cli.train import add_architecture_options, spec_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "autoencode",
        help="pre-train a network on unannotated recordings (autoencoder), to start a classifier from",
        description="Train the convolutions of SongExplorer's network to reconstruct their input (the "
        "representation: mel-cepstrum, spectrogram or waveform) through mirrored transposed convolutions, on "
        "windows drawn from every recording given (no annotations). Writes OUT/encoder/ (a model folder: "
        "songexplorer train --start-from OUT), OUT/history.csv and OUT/autoencoder.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--recordings", required=True, nargs="+", metavar="WAV_OR_DIR",
                        help="recordings, or folders searched for .wav files at any depth")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--nsteps", type=positive_int, default=1000, help="training steps")
    parser.add_argument("--mini-batch", type=positive_int, default=32, help="windows per step")
    parser.add_argument("--learning-rate", type=positive_float, default=0.001, help="Adam's learning rate")
    parser.add_argument("--validate-period", type=nonnegative_int, default=100,
                        help="steps between validation losses (a fixed set of windows), 0 = at the end")
    parser.add_argument("--seed", type=int, default=1, help="seed of weights and windows; -1 = random")
    add_compute_options(parser)
    add_audio_options(parser)
    add_architecture_options(parser)
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from songexplorer_core.autoencoder import AutoencoderConfig, pretrain
    from songexplorer_core.recipes import DEFAULT_RECIPE

    # dropout is not in the encoder; it is kept in the folder's network for the classifier after
    dropout = DEFAULT_RECIPE["model"]["dropout_rate"] if args.dropout is None else args.dropout / 100.0
    config = AutoencoderConfig(
        model=spec_from_args(args, dropout), nsteps=args.nsteps,
        mini_batch=args.mini_batch, learning_rate=args.learning_rate, validate_period=args.validate_period,
        seed=None if args.seed == -1 else args.seed)
    configure_compute_from(args)
    from tqdm import tqdm

    bar = None if args.no_progress else tqdm(total=config.nsteps, unit="step", desc="autoencode", file=sys.stderr)

    def progress(step, nsteps, loss):
        if bar is not None:
            bar.n = step
            bar.set_postfix({"loss": f"{loss:.4f}"}, refresh=False)
            bar.refresh()

    try:
        result = pretrain(args.recordings, config, args.out, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    validation = result.history["validation_loss"].dropna()
    print(f"{result.encoder}: {len(result.recordings)} recording(s), {result.seconds_of_audio:.0f} s; validation "
          f"loss {validation.iloc[-1]:.4f} (1 = no better than each bin's mean); start a classifier with: songexplorer train "
          f"--start-from {result.out_dir} ...")
    return 0
