"""Autoencoder pre-training on unannotated recordings (SongExplorer's ``autoencoder`` loss and
architecture plug-in), whose encoder starts a classifier (``songexplorer_core.transfer``).

SongExplorer's ``autoencoder.py`` plug-in mirrors each convolution of its network with a
``Conv2DTranspose`` of the same kernel, strides and dilation (ReLUs between, none at the end)
and trains the stack to reconstruct its input through that bottleneck, with the mean squared
error as the loss (its ``src/loop``: ``tf.keras.losses.MSE(labels, logits)`` where the "labels"
are the audio itself; training examples are drawn from one ``autoencoded`` range spanning each
recording). Here:

* the **encoder** is the classifier's own network (:func:`~songexplorer_core.models.build_model`
  from a :class:`~songexplorer_core.models.ModelSpec`) up to its last convolution's activation
  (``reluK``, or ``batchnormK`` with batch normalisation after the ReLU);
* the **decoder** mirrors ``convK`` ... ``conv1`` with transposed convolutions;
* the **target** is the representation layer's output (the mel-cepstrum, spectrogram or
  waveform the convolutions see), standardised per frequency bin and channel with the mean and
  s.d. of a sample of windows, so no coefficient dominates the error. SongExplorer reconstructs
  the audio, which its plug-in does only for the waveform representation (its spectrogram and
  mel-cepstrum decoders are left as comments); for a waveform network the two agree up to the
  standardisation. The reconstruction and the target are cropped to their common frames and
  bins (a strided transposed convolution may give one more);
* the **loss** is the mean squared error over every frame, bin and channel;
* **examples** are windows of ``context_tics`` tics drawn uniformly from every recording (no
  annotations); a fixed set of windows, drawn once from another random stream, is the
  "validation" loss (the same recordings: it shows convergence, not generalisation).

:func:`pretrain` writes ``OUT/encoder/`` (a trained-model folder: the classifier network with the
trained encoder and an untrained output for the label ``autoencoded``, ``model.json``'s
``extra.autoencoder`` holding the settings and the final losses), ``OUT/history.csv`` (``step,
train_loss, validation_loss, elapsed_s``) and ``OUT/autoencoder.json``. ``songexplorer train
--start-from OUT`` (or ``TrainConfig.start_from``) then copies the encoder's convolutions into a
classifier and gives it a new output layer.

TensorFlow is imported inside the functions.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core import models as M
from songexplorer_core.atomic import atomic_write, output_lock

#: The label of the encoder's (untrained) output layer: SongExplorer's ``autoencoded`` kind.
AUTOENCODED_LABEL = "autoencoded"
ENCODER_FOLDER = "encoder"
HISTORY_FILE = "history.csv"
SETTINGS_FILE = "autoencoder.json"


class AutoencoderError(ValueError):
    """Pre-training cannot start; the message says why and how to fix it."""


@dataclass(frozen=True)
class AutoencoderConfig:
    """Settings of a pre-training.

    Attributes:
        model: the classifier's network whose convolutions are pre-trained (the classifier
            that starts from it must use the same; ``transfer`` takes it from the folder).
        nsteps: training steps (mini-batches of windows).
        mini_batch: windows per step.
        learning_rate: Adam's learning rate.
        validate_period: steps between validation losses (0: at the end only).
        nvalidation: windows of the fixed validation set.
        seed: seeds the weights, the windows and the validation set (``None``: fresh ones).
    """

    model: M.ModelSpec = M.ModelSpec()
    nsteps: int = 1000
    mini_batch: int = 32
    learning_rate: float = 0.001
    validate_period: int = 100
    nvalidation: int = 256
    seed: int | None = 1

    def __post_init__(self):
        problems = [f"{name} must be a whole number >= {low}, not {getattr(self, name)!r}"
                    for name, low in (("nsteps", 1), ("mini_batch", 1), ("validate_period", 0), ("nvalidation", 1))
                    if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < low]
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            problems.append(f"learning_rate must be a positive number, not {self.learning_rate}")
        if problems:
            raise AutoencoderError("bad autoencoder settings: " + "; ".join(problems))

    def to_dict(self) -> dict:
        values = asdict(self)
        values["model"] = self.model.to_dict()
        return json.loads(json.dumps(values))


@dataclass
class AutoencoderResult:
    """What :func:`pretrain` wrote: ``encoder`` (the trained-model folder to start from),
    ``history`` (one row per step), the recordings used and their total length in seconds."""

    out_dir: Path
    encoder: Path
    history: pd.DataFrame
    recordings: list[Path] = field(default_factory=list)
    seconds_of_audio: float = 0.0


def find_recordings(paths: Sequence[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    """The recordings named: WAV files, and every WAV below a folder (any depth, hidden files
    and ``oldfiles-*`` folders skipped), sorted."""
    from songexplorer_core.audio import is_recording

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += [p for p in path.rglob("*") if p.is_file() and is_recording(p)
                      and not any(part.startswith("oldfiles-") for part in p.relative_to(path).parts)]
        elif path.is_file():
            found.append(path)
        else:
            raise AutoencoderError(f"{path}: no such recording or folder")
    if not found:
        raise AutoencoderError(f"no recordings (.wav) in {', '.join(map(str, paths))}")
    return sorted(set(found))


def _read_all(recordings: Sequence[Path], min_tics: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """``(rate, nchannels, audio, starts)``: every recording's float32 samples one after the
    other and the first tic of each, refusing other rates or channel counts."""
    from songexplorer_core.audio import read_recording

    parts, rate, nchannels = [], None, None
    for path in recordings:
        this_rate, samples = read_recording(path, dtype="float32")
        if rate is None:
            rate, nchannels = this_rate, samples.shape[1]
        elif (this_rate, samples.shape[1]) != (rate, nchannels):
            raise AutoencoderError(f"{path}: {samples.shape[1]} channel(s) at {this_rate} Hz, but {recordings[0]} has "
                                   f"{nchannels} at {rate} Hz; pre-train on recordings of one rate and channel count")
        parts.append(samples)
    starts = np.cumsum([0] + [len(p) for p in parts[:-1]])
    lengths = np.array([len(p) for p in parts])
    if (lengths < min_tics).all():
        raise AutoencoderError(f"every recording is shorter than one window ({min_tics} tics at {rate} Hz)")
    return int(rate), int(nchannels), np.concatenate(parts).astype(np.float32), np.stack([starts, lengths], 1)


def _window_starts(spans: np.ndarray, window: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` window starts drawn uniformly over every tic a window can start at."""
    room = np.maximum(spans[:, 1] - window + 1, 0)
    which = rng.choice(len(spans), size=n, p=room / room.sum())
    return spans[which, 0] + (rng.random(n) * room[which]).astype(np.int64)


def encoder_output_layer(keras_model) -> str:
    """Name of the layer whose output the decoder mirrors back: the last convolution's
    activation (``reluK``; ``batchnormK`` when batch normalisation follows the ReLU)."""
    names = [layer.name for layer in keras_model.layers]
    convs = sorted(int(n[4:]) for n in names if n.startswith("conv") and n[4:].isdigit())
    if not convs:
        raise AutoencoderError("this network has no convolutional layers to pre-train (nconvlayers = 0?)")
    last = convs[-1]
    index = max(names.index(f"relu{last}"), names.index(f"batchnorm{last}") if f"batchnorm{last}" in names else -1)
    return names[index]


def build_autoencoder(trained: M.TrainedModel):
    """The Keras autoencoder over ``trained``'s layers: ``audio -> (target, reconstruction)``
    where ``target`` is the representation and ``reconstruction`` the decoder's output, both
    ``(batch, frames, bins, channels)`` (cropped by the caller). Shares the encoder's layers."""
    keras = M._keras()
    model = trained.keras_model
    representation = model.get_layer("representation").output
    x = model.get_layer(encoder_output_layer(model)).output
    convs = sorted((layer for layer in model.layers if layer.name.startswith("conv") and layer.name[4:].isdigit()),
                   key=lambda layer: int(layer.name[4:]))
    for i, conv in enumerate(reversed(convs)):
        filters = int(conv.input.shape[-1])
        x = keras.layers.Conv2DTranspose(filters, conv.kernel_size, strides=conv.strides,
                                         dilation_rate=conv.dilation_rate, padding="valid",
                                         name=f"decode{len(convs) - i}")(x)
        if i < len(convs) - 1:
            x = keras.layers.ReLU(name=f"decode{len(convs) - i}_relu")(x)
    return keras.Model(inputs=model.input, outputs=[representation, x], name="autoencoder")


def pretrain(recordings, config: AutoencoderConfig, out_dir: str | os.PathLike, *,
             progress: Callable[[int, int, float], None] | None = None) -> AutoencoderResult:
    """Pre-train ``config.model``'s convolutions as an autoencoder on ``recordings`` (WAV files
    or folders of them, no annotations) into ``out_dir`` (see the module docstring).

    Args:
        progress: called after every step with ``(step, nsteps, train_loss)``.

    Raises:
        AutoencoderError: no recordings, mixed rates or channel counts, recordings shorter than
            a window, a folder that already holds an encoder, bad settings.
        ModelError: a network the recordings' rate cannot have (window not a power of two, ...).
    """
    out_dir = Path(out_dir)
    paths = find_recordings(recordings)
    with output_lock(out_dir, what="autoencode"):
        if (out_dir / ENCODER_FOLDER / M.METADATA_FILE).exists():
            raise AutoencoderError(f"{out_dir}: already holds a pre-trained encoder; use another output folder")
        from songexplorer_core.audio import recording_info

        rate = recording_info(paths[0]).rate
        M.check_geometry(config.model, rate)
        window = config.model.context_tics(rate)
        rate, nchannels, audio, spans = _read_all(paths, window)
        return _pretrain(paths, audio, spans, rate, nchannels, window, config, out_dir, progress)


def _pretrain(paths, audio, spans, rate, nchannels, window, config, out_dir, progress) -> AutoencoderResult:
    import tensorflow as tf

    keras = M._keras()
    seeds = np.random.SeedSequence(config.seed)
    batch_rng, validation_rng = (np.random.default_rng(s) for s in seeds.spawn(2))
    weights_seed = None if config.seed is None else int(config.seed)
    trained = M.new_trained_model(config.model, labels=[AUTOENCODED_LABEL], rate=rate, nchannels=nchannels,
                                  seed=weights_seed)
    if weights_seed is not None:
        keras.utils.set_random_seed(weights_seed)  # the decoder's initial weights
    autoencoder = build_autoencoder(trained)
    offsets = np.arange(window)

    def windows(starts):
        return audio[starts[:, None] + offsets]

    validation = windows(_window_starts(spans, window, config.nvalidation, validation_rng))
    sample = np.asarray(autoencoder(validation[: min(64, len(validation))], training=False)[0])
    mean = sample.mean(axis=(0, 1), keepdims=True).astype(np.float32)
    scale = (sample.std(axis=(0, 1), keepdims=True) + 1e-6).astype(np.float32)
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    variables = autoencoder.trainable_variables

    def loss_of(batch, training):
        target, reconstruction = autoencoder(batch, training=training)
        frames = tf.minimum(tf.shape(target)[1], tf.shape(reconstruction)[1])
        bins = min(int(target.shape[2]), int(reconstruction.shape[2]))
        target = (target[:, :frames, :bins] - mean[:, :, :bins]) / scale[:, :, :bins]
        return tf.reduce_mean(tf.square(reconstruction[:, :frames, :bins] - target))

    @tf.function(reduce_retracing=True)
    def step(batch):
        with tf.GradientTape() as tape:
            value = loss_of(batch, True)
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables))
        return value

    @tf.function(reduce_retracing=True)
    def evaluate(batch):
        return loss_of(batch, False)

    def validation_loss():
        losses = [float(evaluate(validation[i:i + 256])) * len(validation[i:i + 256])
                  for i in range(0, len(validation), 256)]
        return sum(losses) / len(validation)

    initial = validation_loss()
    rows, started = [], time.perf_counter()
    for number in range(1, config.nsteps + 1):
        value = float(step(windows(_window_starts(spans, window, config.mini_batch, batch_rng))))
        row = {"step": number, "train_loss": value, "validation_loss": math.nan,
               "elapsed_s": time.perf_counter() - started}
        if number == config.nsteps or (config.validate_period and number % config.validate_period == 0):
            row["validation_loss"] = validation_loss()
        rows.append(row)
        if progress is not None:
            progress(number, config.nsteps, value)
    history = pd.DataFrame(rows, columns=["step", "train_loss", "validation_loss", "elapsed_s"])
    seconds = float(sum(spans[:, 1]) / rate)
    trained.extra = {"autoencoder": {
        **config.to_dict(), "recordings": [p.name for p in paths], "seconds_of_audio": seconds,
        "encoder_output": encoder_output_layer(trained.keras_model),
        "final_train_loss": float(history["train_loss"].iloc[-10:].mean()),
        "final_validation_loss": float(history["validation_loss"].dropna().iloc[-1]),
        "initial_validation_loss": initial}}
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / HISTORY_FILE, "w", encoding="utf-8", newline="") as handle:
        history.to_csv(handle, index=False, float_format="%.6g")
    with atomic_write(out_dir / SETTINGS_FILE, "w", encoding="utf-8") as handle:
        json.dump({**config.to_dict(), "rate": rate, "nchannels": nchannels,
                   "recordings": [str(p) for p in paths]}, handle, indent=1)
    encoder = M.save_trained_model(trained, out_dir / ENCODER_FOLDER)
    return AutoencoderResult(out_dir=out_dir, encoder=encoder, history=history, recordings=list(paths),
                             seconds_of_audio=seconds)
