"""Train SongExplorer's classifier on annotated ground truth (its ``src/train`` and ``src/loop``).

``train(ground_truth, config, out_dir)`` trains ``config.nreplicates`` models, replicate ``r``
(1-based) in ``out_dir/train_<r>r/`` (SongExplorer's names). Each model folder holds:

* ``ckpt-<N>/``: a saved :class:`~songexplorer_core.models.TrainedModel` (``model.keras``,
  ``model.json``) plus ``optimizer.npz`` and ``state.json`` (random-number streams, elapsed time),
  so training resumes exactly where it stopped. ``ckpt-0`` is the untrained model; then one every
  ``save_period`` steps, at every validation (so the best validated checkpoint always exists) and
  at the last step. Each is written to a temporary folder and renamed.
* ``validation.ckpt-<N>.npz`` at every validation (every ``validate_period`` steps and the last
  step): ``logits`` float32 ``[n, P, nlabels]`` (raw), ``groundtruth`` (exclusive: int ``[n, P]``
  label index or -1 masked; overlapped: int8 ``[n, P, nlabels]`` 1/0/2 = present/absent/unknown),
  ``labels``, and per validation annotation ``wav``, ``recording``, ``start``, ``stop``, ``kind``,
  ``label``, ``offset_tic`` (the tic the example was centred on). ``testing.ckpt-<N>.npz`` likewise
  at the last step when a testing set exists.
* ``history.csv``: one row per step: ``step, train_loss, train_accuracy, validation_loss,
  validation_accuracy, elapsed_s`` (validation columns empty between validations).
* ``annotation-durations.csv``: per label, how many point and range annotations it has and how
  long the ranges are (``dataset.annotation_durations``; the ethogram drops predicted segments
  much shorter than any annotated one).
* ``labels.txt`` (SongExplorer's format), ``train.json`` (the configuration), and ``train.log``
  (SongExplorer's log lines: settings, model summary, counts per set, one
  ``elapsed,step,accuracy%,loss`` line per step, confusion matrices, ``... Validation`` lines).

If the model folder already has checkpoints, training continues from the last one (after
checking that the settings match), so a training killed part-way resumes; asking for more steps
than before extends it.

The optimised loss is the mean cross-entropy over the unmasked taps (exclusive: softmax over
labels; overlapped: a sigmoid per label), and the same number is logged (SongExplorer optimises
the sum but logs the mean over all taps, masked ones counted as 0: QUIRK 9).

Why one module: the training loop, its resumable checkpoints and its log share private state
(the compiled step functions, the random generators whose states each checkpoint saves, the open
log), and the sections follow the loop's order; split, those privates would become an interface.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import re
import socket
import time
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from songexplorer_core import dataset as D
from songexplorer_core import models as M
from songexplorer_core.atomic import atomic_write, output_lock, remove_stale_temporaries
from songexplorer_core.labels import FIX as LABEL_FIX
from songexplorer_core.labels import label_problem

logger = logging.getLogger(__name__)

#: Optimizers SongExplorer offers (Keras classes), by lower-case name; Adam is the default.
OPTIMIZERS = {"adadelta": "Adadelta", "adagrad": "Adagrad", "adam": "Adam", "adamax": "Adamax", "ftrl": "Ftrl",
              "nadam": "Nadam", "rmsprop": "RMSprop", "sgd": "SGD"}
HISTORY_COLUMNS = ("step", "train_loss", "train_accuracy", "validation_loss", "validation_accuracy", "elapsed_s")
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.npz"
CONFIG_FILE = "train.json"
#: Settings that must match to resume a training in the same folder: the network, its outputs,
#: the optimizer's state and which annotations validate it.
_RESUME_KEYS = ("labels_to_use", "kinds_to_use", "model", "parallelize", "optimizer", "loss", "overlapped_prefix",
                "negatives", "validate_percentage", "validation_offset_percentage", "testing_percentage",
                "validation_files", "testing_files", "start_from", "train_layers", "freeze")
#: What a ``train.json`` written before a setting existed means by leaving it out.
_ABSENT_MEANS = {"start_from": None, "train_layers": [], "freeze": 0}
#: Hyperparameters a resumed training may change only when asked to
#: (``allow_changed_hyperparameters``): the steps before and after would follow different recipes.
#: The rest (``nsteps``, the validation and checkpoint periods, ``nreplicates``, ``steps_per_call``,
#: ``evaluation_batch``, ``rate``/``nchannels``, which the data decide) may change freely.
HYPERPARAMETER_KEYS = ("learning_rate", "mini_batch", "equalize", "batch_seed", "weights_seed", "augmentation")


class TrainError(ValueError):
    """Training cannot start or continue; the message says why and how to fix it."""


# ---------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training needs besides the ground truth (defaults: SongExplorer's tutorial).

    Attributes:
        labels_to_use: labels to learn, in output order (becomes ``labels.txt``).
        kinds_to_use: kinds of intervals to learn from.
        model: the architecture, including ``context_ms`` and ``shiftby_ms``.
        parallelize: output taps per training example (P).
        optimizer: one of :data:`OPTIMIZERS` (case-insensitive), Keras default hyper-parameters.
        learning_rate: the optimizer's learning rate.
        nsteps: training steps (mini-batches).
        validate_period: validate every this many steps (0: only at the last step).
        save_period: checkpoint every this many steps (``None``: ``validate_period``); every
            validated step is checkpointed too.
        validate_percentage: percent of annotations (by SongExplorer's stable hash) used for
            validation; negative swaps the slice and the rest (cross-validation).
        validation_offset_percentage: where the validation slice starts (cross-validation).
        testing_percentage: percent held out for testing.
        validation_files, testing_files: recordings (basenames) used whole for validation/testing.
        mini_batch: examples per step.
        batch_seed: seeds which annotations are drawn, where inside ranges, and augmentation
            (``None``: different every time).
        weights_seed: seeds the initial weights and dropout (``None``: different every time).
        loss: ``exclusive`` (one label per tap) or ``overlapped`` (each label present/absent).
        overlapped_prefix: prefix marking a label's absence for the overlapped loss.
        negatives: exclusive loss: learn from ``not_<label>`` annotations (SongExplorer's
            notsong CSVs) too, as taps that are not that label (loss ``-log(1 - p(label))``).
        augmentation: volume, noise, dc, reverse, invert (training batches only).
        equalize: draw training annotations balanced over (label, kind) groups.
        nreplicates: models trained with the same settings; replicate r uses seeds ``seed + r - 1``.
        rate: tic rate every recording must have, Hz (``None``: whatever the first one has).
        nchannels: channels every recording must have (``None``: as the first one).
        steps_per_call: training steps run per call into TensorFlow (fewer Python round trips).
        evaluation_batch: examples per call when validating.
        start_from: a trained-model folder to start from (transfer learning,
            ``songexplorer_core.transfer``): its layers are copied, the output layer is new when
            the labels differ; ``model`` must be the parent's network (``transfer.parent_spec``).
        train_layers: with ``start_from``, the layers with weights that training changes (the
            others keep the parent's weights); empty: all, unless ``freeze`` is given.
        freeze: with ``start_from``, keep the first ``freeze`` layers with weights as the parent's.
    """

    labels_to_use: tuple[str, ...]
    kinds_to_use: tuple[str, ...] = ("annotated",)
    model: M.ModelSpec = M.ModelSpec()
    parallelize: int = 2
    optimizer: str = "Adam"
    learning_rate: float = 0.0002
    nsteps: int = 300
    validate_period: int = 30
    save_period: int | None = None
    validate_percentage: float = 40.0
    validation_offset_percentage: float = 0.0
    testing_percentage: float = 0.0
    validation_files: tuple[str, ...] = ()
    testing_files: tuple[str, ...] = ()
    mini_batch: int = 32
    batch_seed: int | None = None
    weights_seed: int | None = None
    loss: str = "exclusive"
    overlapped_prefix: str = "not_"
    negatives: bool = False
    augmentation: D.Augmentation = D.Augmentation()
    equalize: bool = True
    nreplicates: int = 1
    rate: int | None = None
    nchannels: int | None = None
    steps_per_call: int = 10
    evaluation_batch: int = 256
    start_from: str | None = None
    train_layers: tuple[str, ...] = ()
    freeze: int = 0

    def __post_init__(self):
        def split(value):
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            return tuple(str(v) for v in value)

        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        for name in ("labels_to_use", "kinds_to_use", "validation_files", "testing_files", "train_layers"):
            set_(name, split(getattr(self, name)))
        if isinstance(self.model, Mapping):
            set_("model", M.ModelSpec.from_dict(self.model))
        if isinstance(self.augmentation, Mapping):
            set_("augmentation", D.Augmentation(**self.augmentation))
        problems = []
        if not self.labels_to_use:
            problems.append("labels_to_use is empty: give the labels to learn, e.g. mel-pulse,mel-sine,ambient")
        for label in self.labels_to_use:  # they become labels.txt and file names: names, never paths
            problem = label_problem(label)
            if problem is not None:
                problems.append(f"labels_to_use: label {label!r} {problem} ({LABEL_FIX})")
        if self.loss == D.OVERLAPPED and label_problem(self.overlapped_prefix) is not None:
            problems.append(f"overlapped_prefix {self.overlapped_prefix!r} "
                            f"{label_problem(self.overlapped_prefix)} (it starts labels: {LABEL_FIX})")
        if self.optimizer.lower() not in OPTIMIZERS:
            problems.append(f"optimizer {self.optimizer!r} is not one of {sorted(OPTIMIZERS.values())}")
        if self.loss not in M.LOSSES:
            problems.append(f"loss must be one of {M.LOSSES}, not {self.loss!r}")
        for name in ("nsteps", "validate_period", "mini_batch", "parallelize", "nreplicates", "steps_per_call",
                     "evaluation_batch"):
            value = getattr(self, name)
            minimum = 0 if name in ("nsteps", "validate_period") else 1
            if int(value) != value or value < minimum:
                problems.append(f"{name} must be a whole number >= {minimum}, not {value!r}")
        if self.save_period is not None and self.save_period < 1:
            problems.append(f"save_period must be >= 1, not {self.save_period}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            problems.append(f"learning_rate must be a positive number, not {self.learning_rate}")
        for name, low in (("validate_percentage", -100.0), ("validation_offset_percentage", 0.0),
                          ("testing_percentage", 0.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= 100):
                problems.append(f"{name} must be a percentage, {low:g} to 100, not {value!r}")
        for name in ("rate", "nchannels"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 1):
                problems.append(f"{name} must be a whole number >= 1, not {value!r}")
        if self.start_from is not None:
            set_("start_from", str(self.start_from))
        if (self.train_layers or self.freeze) and not self.start_from:
            problems.append("train_layers and freeze choose which of a parent model's layers to train: give "
                            "start_from too")
        if self.train_layers and self.freeze:
            problems.append("give either train_layers (the layers to train) or freeze (how many to keep), not both")
        if int(self.freeze) != self.freeze or self.freeze < 0:
            problems.append(f"freeze must be a whole number >= 0, not {self.freeze!r}")
        if self.augmentation.reverse and self.model.shiftby_ms != 0:
            problems.append("reverse augmentation with shiftby_ms != 0 would move the labelled point to the other "
                            "side of the window; use shiftby_ms=0 or no reversal")
        if problems:
            raise TrainError("bad training settings: " + "; ".join(problems))

    @property
    def checkpoint_period(self) -> int:
        """Steps between checkpoints."""
        return int(self.save_period if self.save_period is not None else self.validate_period)

    def to_dict(self) -> dict:
        """JSON-able dict (``model`` and ``augmentation`` as dicts)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["model"] = self.model.to_dict()
        values["augmentation"] = json.loads(json.dumps(dataclasses.asdict(self.augmentation)))
        return json.loads(json.dumps(values))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise TrainError(f"unknown training setting(s) {unknown}")
        return cls(**dict(values))


# ---------------------------------------------------------------------------------------------
# results and progress


@dataclass
class TrainProgress:
    """Reported to the ``progress`` callback after every training step."""

    replicate: int
    nreplicates: int
    step: int
    nsteps: int
    train_loss: float
    train_accuracy: float
    elapsed_s: float
    validation_accuracy: float | None = None


@dataclass
class ReplicateResult:
    """One trained model.

    Attributes:
        replicate: 1-based replicate number.
        model_dir: its folder (``out_dir/train_<r>r``).
        checkpoint_steps: steps with a ``ckpt-<N>`` folder.
        validation_steps: steps with a ``validation.ckpt-<N>.npz``.
        history: ``history.csv`` as a DataFrame.
        resumed_from: the checkpoint step training continued from (``None``: fresh start).
    """

    replicate: int
    model_dir: Path
    checkpoint_steps: list[int]
    validation_steps: list[int]
    history: pd.DataFrame
    resumed_from: int | None = None

    def checkpoint(self, step: int | None = None) -> Path:
        """Folder of checkpoint ``step`` (the last one by default)."""
        step = self.checkpoint_steps[-1] if step is None else int(step)
        return self.model_dir / f"ckpt-{step}"

    def validation_file(self, step: int | None = None) -> Path:
        step = self.validation_steps[-1] if step is None else int(step)
        return self.model_dir / f"validation.ckpt-{step}.npz"


@dataclass
class TrainResult:
    """What :func:`train` produced: one :class:`ReplicateResult` per replicate."""

    out_dir: Path
    replicates: list[ReplicateResult]
    labels: list[str]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  #: annotations per set and label

    @property
    def model_dirs(self) -> list[Path]:
        return [r.model_dir for r in self.replicates]

    @property
    def checkpoint_steps(self) -> list[int]:
        """Checkpoint steps of the first replicate (all replicates have the same)."""
        return self.replicates[0].checkpoint_steps

    @property
    def history(self) -> pd.DataFrame:
        """Every replicate's history, with a ``replicate`` column."""
        return pd.concat([r.history.assign(replicate=r.replicate) for r in self.replicates], ignore_index=True)


def model_dir_name(replicate: int) -> str:
    """SongExplorer's folder name of replicate ``r`` (1-based): ``train_<r>r``."""
    return f"train_{int(replicate)}r"


def checkpoint_steps(model_dir: str | os.PathLike) -> list[int]:
    """Sorted steps of the ``ckpt-<N>`` folders in a model folder."""
    steps = []
    for path in Path(model_dir).glob("ckpt-*"):
        match = re.fullmatch(r"ckpt-(\d+)", path.name)
        if match and path.is_dir():
            steps.append(int(match.group(1)))
    return sorted(steps)


def validation_steps(model_dir: str | os.PathLike, which: str = "validation") -> list[int]:
    steps = []
    for path in Path(model_dir).glob(f"{which}.ckpt-*.npz"):
        match = re.fullmatch(rf"{which}\.ckpt-(\d+)\.npz", path.name)
        if match:
            steps.append(int(match.group(1)))
    return sorted(steps)


def read_history(model_dir: str | os.PathLike) -> pd.DataFrame:
    path = Path(model_dir) / "history.csv"
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in HISTORY_COLUMNS}).astype({"step": "int64"})
    return pd.read_csv(path)


# ---------------------------------------------------------------------------------------------
# the compiled steps


def _make_optimizer(name: str, learning_rate: float):
    import keras  # noqa: PLC0415

    return getattr(keras.optimizers, OPTIMIZERS[name.lower()])(learning_rate=learning_rate)


def exclusive_crossentropy(logits, targets):
    """Per-tap cross-entropy of the exclusive (softmax) loss, TensorFlow.

    Args:
        logits: float32 ``[..., nlabels]``.
        targets: int32 ``[...]``: a label index (the tap is that label: ``-log p``), ``-1``
            (unknown: masked) or ``-2 - k`` (the tap is *not* label ``k``, a ``not_`` annotation
            with ``TrainConfig.negatives``: ``-log(1 - p_k)``).

    Returns:
        ``(crossentropy, correct, mask)``, each float32 ``[...]``; ``mask`` is 1 on known taps,
        and ``correct`` says whether the label of highest probability agrees with the target.
    """
    import tensorflow as tf  # noqa: PLC0415

    nlabels = tf.shape(logits)[-1]
    positive = tf.cast(targets >= 0, tf.float32)
    negative = tf.cast(targets <= -2, tf.float32)
    predicted = tf.argmax(logits, -1, output_type=tf.int32)
    is_label = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(targets, 0), logits=logits)
    # -log(1 - p_k) = logsumexp(all logits) - logsumexp(all but k's)
    excluded = tf.one_hot(tf.maximum(-2 - targets, 0), nlabels, on_value=-1e9, off_value=0.0)
    not_label = tf.reduce_logsumexp(logits, -1) - tf.reduce_logsumexp(logits + excluded, -1)
    correct = (tf.cast(tf.equal(predicted, targets), tf.float32) * positive
               + tf.cast(tf.not_equal(predicted, -2 - targets), tf.float32) * negative)
    return is_label * positive + not_label * negative, correct, positive + negative


class _Steps:
    """Compiled training and evaluation functions for one model."""

    def __init__(self, keras_model, optimizer, *, loss: str, nchannels: int, nlabels: int):
        import tensorflow as tf  # noqa: PLC0415

        self.tf = tf
        self.model = keras_model
        self.optimizer = optimizer
        variables = keras_model.trainable_variables
        exclusive = loss == "exclusive"

        def loss_and_accuracy(logits, targets):
            if exclusive:
                crossentropy, correct, mask = exclusive_crossentropy(logits, targets)
            else:
                mask = tf.cast(targets != 2, tf.float32)
                present = tf.cast(tf.equal(targets, 1), tf.float32)
                crossentropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=present, logits=logits)
                correct = tf.cast(tf.equal(logits > 0, targets == 1), tf.float32)
            count = tf.maximum(tf.reduce_sum(mask), 1.0)
            return tf.reduce_sum(crossentropy * mask) / count, tf.reduce_sum(correct * mask) / count

        def one_step(audio, targets):
            with tf.GradientTape() as tape:
                logits = keras_model(audio, training=True)
                value, accuracy = loss_and_accuracy(logits, targets)
            gradients = tape.gradient(value, variables)
            optimizer.apply_gradients(zip(gradients, variables))
            return value, accuracy

        target_spec = (tf.TensorSpec([None, None, None], tf.int32) if exclusive
                       else tf.TensorSpec([None, None, None, nlabels], tf.int32))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, nchannels], tf.float32), target_spec],
                     reduce_retracing=True)
        def train_steps(audio, targets):
            n = tf.shape(audio)[0]
            losses = tf.TensorArray(tf.float32, size=n)
            accuracies = tf.TensorArray(tf.float32, size=n)
            for i in tf.range(n):
                value, accuracy = one_step(audio[i], targets[i])
                losses = losses.write(i, value)
                accuracies = accuracies.write(i, accuracy)
            return losses.stack(), accuracies.stack()

        @tf.function(input_signature=[tf.TensorSpec([None, None, nchannels], tf.float32)], reduce_retracing=True)
        def logits_of(audio):
            return keras_model(audio, training=False)

        self.train_steps = train_steps
        self.logits_of = logits_of

    def run(self, audio: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Train on ``audio`` ``(k, batch, tics, channels)``: k steps; returns losses, accuracies."""
        losses, accuracies = self.train_steps(audio, targets.astype(np.int32))
        return np.asarray(losses), np.asarray(accuracies)

    def logits(self, audio: np.ndarray) -> np.ndarray:
        return np.asarray(self.logits_of(audio))


def _optimizer_state(optimizer) -> dict[str, np.ndarray]:
    return {f"{i:04d}:{v.path if hasattr(v, 'path') else v.name}": v.numpy() for i, v in
            enumerate(optimizer.variables)}


def _restore_optimizer(optimizer, variables, path: Path) -> None:
    optimizer.build(variables)
    try:
        with np.load(path) as saved:
            stored = {k: saved[k] for k in saved.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise TrainError(f"{path}: corrupt optimizer state ({error}); delete this checkpoint folder to resume from "
                         f"the one before") from error
    current = optimizer.variables
    if len(stored) != len(current):
        raise TrainError(f"{path}: holds {len(stored)} optimizer variables but the optimizer has {len(current)}; "
                         f"the checkpoint was written with other settings")
    for (name, value), variable in zip(sorted(stored.items()), current):
        if tuple(value.shape) != tuple(variable.shape):
            raise TrainError(f"{path}: optimizer variable {name} has shape {value.shape}, expected {variable.shape}")
        variable.assign(value)


def _seed_generator_states(keras_model) -> dict[str, list]:
    """States of the dropout layers' random streams (so a resumed training draws the same masks)."""
    states = {}
    for layer in keras_model.layers:
        generator = getattr(layer, "seed_generator", None)
        if generator is not None and getattr(generator, "state", None) is not None:
            states[layer.name] = generator.state.numpy().tolist()
    return states


def _restore_seed_generators(keras_model, states: Mapping[str, list]) -> None:
    for layer in keras_model.layers:
        generator = getattr(layer, "seed_generator", None)
        if generator is not None and layer.name in states:
            generator.state.assign(np.asarray(states[layer.name], dtype=generator.state.numpy().dtype))


# ---------------------------------------------------------------------------------------------
# files


class _Log:
    """Appends lines to ``train.log`` (flushed at once, so a killed training leaves its log)."""

    def __init__(self, path: Path):
        self.path = path
        self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def __call__(self, *lines: str) -> None:
        for line in lines:
            self.handle.write(f"{line}\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def _write_history(model_dir: Path, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    with atomic_write(model_dir / "history.csv", "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False, float_format="%.6g")


def _write_evaluation(path: Path, dataset: D.Dataset, which: str, logits: np.ndarray, targets: np.ndarray,
                      offsets: np.ndarray) -> None:
    sounds = dataset.sounds.iloc[dataset.indices(which)]
    if dataset.loss != "overlapped":
        # SongExplorer's format: a label index or -1; a negative (not_) tap is written as masked
        targets = np.where(targets <= -2, -1, targets)
    arrays = dict(
        logits=logits.astype(np.float32),
        groundtruth=targets.astype(np.int8 if dataset.loss == "overlapped" else np.int32),
        labels=np.asarray(dataset.labels, dtype=str),
        wav=sounds["wav"].to_numpy(dtype=str), recording=sounds["recording"].to_numpy(dtype=str),
        start=sounds["start"].to_numpy(np.int64), stop=sounds["stop"].to_numpy(np.int64),
        kind=sounds["kind"].to_numpy(dtype=str), label=sounds["label"].to_numpy(dtype=str),
        offset_tic=np.asarray(offsets, dtype=np.int64),
    )
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)


def confusion_matrix(logits: np.ndarray, targets: np.ndarray, loss: str) -> np.ndarray:
    """Counts of taps: exclusive ``[truth, prediction]`` (nlabels x nlabels) over unmasked taps;
    overlapped one 2x2 ``[[TP, FN], [FP, TN]]`` per label over known (tap, label) pairs."""
    nlabels = logits.shape[-1]
    if loss == "exclusive":
        mask = targets >= 0
        truth, predicted = targets[mask], np.argmax(logits, axis=-1)[mask]
        return np.bincount(truth * nlabels + predicted, minlength=nlabels * nlabels).reshape(nlabels, nlabels)
    out = np.zeros((nlabels, 2, 2), dtype=np.int64)
    for k in range(nlabels):
        known = targets[..., k] != 2
        present = targets[..., k][known] == 1
        said = logits[..., k][known] > 0
        out[k] = [[np.sum(present & said), np.sum(present & ~said)], [np.sum(~present & said), np.sum(~present & ~said)]]
    return out


def _evaluate(steps: _Steps, dataset: D.Dataset, which: str, batch_size: int, rng) -> dict:
    logits, targets, offsets = [], [], []
    for batch in dataset.evaluation_batches(which, batch_size, rng):
        logits.append(steps.logits(batch.audio))
        targets.append(batch.targets)
        offsets.append(batch.offset_tic)
    logits = np.concatenate(logits) if logits else np.zeros((0, dataset.geometry.parallelize, len(dataset.labels)),
                                                              np.float32)
    targets = np.concatenate(targets) if targets else np.zeros(logits.shape[:2], np.int32)
    offsets = np.concatenate(offsets) if offsets else np.zeros(0, np.int64)
    loss_value, accuracy = _metrics(logits, targets, dataset.loss)
    return dict(logits=logits, targets=targets, offsets=offsets, loss=loss_value, accuracy=accuracy)


def _metrics(logits: np.ndarray, targets: np.ndarray, loss: str) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over unmasked taps (numpy, float64)."""
    logits = logits.astype(np.float64)
    if loss == "exclusive":
        mask = targets >= 0
        if not mask.any():
            return math.nan, math.nan
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(log_softmax, np.maximum(targets, 0)[..., None], axis=-1)[..., 0]
        return float(-picked[mask].mean()), float((np.argmax(logits, axis=-1) == targets)[mask].mean())
    mask = targets != 2
    if not mask.any():
        return math.nan, math.nan
    present = (targets == 1).astype(np.float64)
    crossentropy = np.maximum(logits, 0) - logits * present + np.log1p(np.exp(-np.abs(logits)))
    return float(crossentropy[mask].mean()), float(((logits > 0) == (targets == 1))[mask].mean())


# ---------------------------------------------------------------------------------------------
# training


def _geometry(config: TrainConfig, rate: int) -> D.Geometry:
    spec = config.model
    stride = M.get_architecture(spec.architecture).stride_tics(spec, rate)
    return D.Geometry(context_tics=spec.context_tics(rate), shiftby_tics=spec.shiftby_tics(rate),
                      stride_tics=stride, parallelize=int(config.parallelize))


def _probe_rate(ground_truth: D.GroundTruth, config: TrainConfig) -> int:
    """The tic rate to build the geometry with: the configured one, else the first used recording's."""
    if config.rate is not None:
        return int(config.rate)
    from songexplorer_core.audio import recording_info  # noqa: PLC0415

    table = ground_truth.intervals
    used = table[table["kind"].isin(config.kinds_to_use)]
    keys = sorted(set(used["recording"])) or sorted(ground_truth.recordings)
    if not keys:
        where = f" in {ground_truth.root}" if ground_truth.root else ""
        raise TrainError(f"no annotations{where}: nothing to train on")
    return recording_info(ground_truth.recordings[keys[0]]).rate


def prepare_dataset(ground_truth, config: TrainConfig) -> D.Dataset:
    """Select, split and load the ground truth for ``config`` (see :func:`dataset.make_dataset`)."""
    truth = D.as_ground_truth(ground_truth, kinds=config.kinds_to_use)
    rate = _probe_rate(truth, config)
    if config.start_from:  # another rate is refused naming both, before the geometry is checked
        from songexplorer_core.transfer import check_rate  # noqa: PLC0415

        check_rate(config.start_from, rate=rate, nchannels=config.nchannels)
    M.check_geometry(config.model, rate)
    return D.make_dataset(
        truth, labels_to_use=config.labels_to_use, kinds_to_use=config.kinds_to_use,
        geometry=_geometry(config, rate), rate=rate, nchannels=config.nchannels, loss=config.loss,
        overlapped_prefix=config.overlapped_prefix, negatives=config.negatives, validation_percentage=config.validate_percentage,
        validation_offset_percentage=config.validation_offset_percentage,
        testing_percentage=config.testing_percentage, validation_files=config.validation_files,
        testing_files=config.testing_files, equalize=config.equalize, mini_batch=config.mini_batch)


def train(ground_truth, config: TrainConfig, out_dir: str | os.PathLike, *,
          progress: Callable[[TrainProgress], None] | None = None,
          dataset: D.Dataset | None = None, allow_changed_hyperparameters: bool = False) -> TrainResult:
    """Train ``config.nreplicates`` models on ``ground_truth`` into ``out_dir/train_<r>r/``.

    Args:
        ground_truth: a ground-truth folder (annotation CSVs beside their WAVs, any depth) or a
            :class:`~songexplorer_core.dataset.GroundTruth`.
        config: the settings.
        out_dir: the "logs folder"; created if needed. Existing checkpoints there are resumed.
        progress: called after every step with a :class:`TrainProgress`; an exception raised
            there stops training (the last checkpoint stays, and a later call resumes from it).
        dataset: a dataset already made by :func:`prepare_dataset` (skips reading the ground truth).
        allow_changed_hyperparameters: resume a training whose :data:`HYPERPARAMETER_KEYS`
            (learning rate, mini-batch, seeds, augmentation...) differ from the ones it started
            with; otherwise that is refused.

    Raises:
        TrainError, DatasetError, RecordingError, ModelError: bad settings or input, each naming
            what to fix.
        BusyError: another training writes into ``out_dir`` (it is named: pid, host, start).
    """
    out_dir = Path(out_dir)
    with output_lock(out_dir, what="train"):
        data = dataset if dataset is not None else prepare_dataset(ground_truth, config)
        replicates = []
        for replicate in range(1, config.nreplicates + 1):
            replicates.append(train_model(data, config, out_dir / model_dir_name(replicate), replicate=replicate,
                                          progress=progress,
                                          allow_changed_hyperparameters=allow_changed_hyperparameters))
    counts = {which: data.counts(which) for which in D.SETS}
    return TrainResult(out_dir=out_dir, replicates=replicates, labels=list(data.labels), counts=counts)


def _seed(seed: int | None, replicate: int) -> int | None:
    return None if seed is None else int(seed) + replicate - 1


def _check_resumable(model_dir: Path, config: TrainConfig, allow_changed_hyperparameters: bool = False
                     ) -> list[str]:
    """Refuse to resume ``model_dir`` with other settings; returns the hyperparameters that
    changed (allowed only with ``allow_changed_hyperparameters``), as ``key: old -> new``."""
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        raise TrainError(f"{model_dir}: has checkpoints but no {CONFIG_FILE}; it was not written by this training. "
                         f"Use another output folder")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TrainError(f"{path}: corrupt ({error}); use another output folder") from error
    if not isinstance(saved, dict):
        raise TrainError(f"{path}: corrupt (not a settings object); use another output folder")
    current = config.to_dict()
    differ = [k for k in _RESUME_KEYS if saved.get(k, _ABSENT_MEANS.get(k)) != current.get(k)]
    if differ:
        details = "; ".join(f"{k}: {saved.get(k)!r} there, {current.get(k)!r} now" for k in differ)
        raise TrainError(f"{model_dir}: holds a training with other settings ({details}). Use another output "
                         f"folder to train with these settings, or the same settings to resume it")
    changed = [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in HYPERPARAMETER_KEYS
               if k in saved and saved.get(k) != current.get(k)]
    if changed and not allow_changed_hyperparameters:
        raise TrainError(f"{model_dir}: was trained with other hyperparameters ({'; '.join(changed)}, as recorded "
                         f"in {path}). Resume with the same ones, use another output folder, or allow the change "
                         f"(--allow-changed-hyperparameters, allow_changed_hyperparameters=True)")
    return changed


def train_model(dataset: D.Dataset, config: TrainConfig, model_dir: str | os.PathLike, *, replicate: int = 1,
                progress: Callable[[TrainProgress], None] | None = None,
                allow_changed_hyperparameters: bool = False) -> ReplicateResult:
    """Train one model into ``model_dir`` (the files listed in the module docstring), resuming
    from its last checkpoint if it has one (see :func:`train` for the arguments). The folder has
    one writer at a time (:func:`~songexplorer_core.atomic.output_lock`)."""
    model_dir = Path(model_dir)
    with output_lock(model_dir, what="train"):
        # what a killed training was writing: a checkpoint folder, history, validation files
        remove_stale_temporaries(model_dir)
        return _train_model(dataset, config, model_dir, replicate=replicate, progress=progress,
                            allow_changed_hyperparameters=allow_changed_hyperparameters)


def _train_model(dataset: D.Dataset, config: TrainConfig, model_dir: Path, *, replicate: int,
                 progress, allow_changed_hyperparameters: bool) -> ReplicateResult:
    labels = list(dataset.labels)
    rate, nchannels = dataset.rate, dataset.nchannels
    existing = checkpoint_steps(model_dir)
    log = _Log(model_dir / "train.log")
    try:
        if existing:
            changed = _check_resumable(model_dir, config, allow_changed_hyperparameters)
            start = existing[-1]
            trained = M.load_trained_model(model_dir / f"ckpt-{start}")
            if trained.labels != labels:
                raise TrainError(f"{model_dir / f'ckpt-{start}'}: was trained on labels {trained.labels}, not {labels}")
            if (trained.rate, trained.nchannels) != (rate, nchannels):
                raise TrainError(f"{model_dir / f'ckpt-{start}'}: was trained on {trained.nchannels}-channel "
                                 f"recordings at {trained.rate} Hz, these are {nchannels}-channel at {rate} Hz; "
                                 f"use another output folder")
            keras_model = trained.keras_model
            optimizer = _make_optimizer(config.optimizer, config.learning_rate)
            _restore_optimizer(optimizer, keras_model.trainable_variables, model_dir / f"ckpt-{start}" / OPTIMIZER_FILE)
            state = _read_state(model_dir / f"ckpt-{start}")
            _restore_seed_generators(keras_model, state.get("dropout", {}))
            batch_rng = _rng_from_state(state["batch_rng"])
            augment_rng = _rng_from_state(state["augment_rng"])
            elapsed0 = float(state.get("elapsed_s", 0.0))
            history = read_history(model_dir)
            history = history[history["step"] <= start].to_dict("records")
            missing = sorted(set(range(1, start + 1)) - {int(row["step"]) for row in history})
            if missing:
                log(f"WARNING: history.csv lacks steps {missing[0]}..{missing[-1]} ({len(missing)} rows) before "
                    f"the checkpoint resumed from")
            if changed:
                log(f"{_now()}: resuming with changed hyperparameters (allowed): {'; '.join(changed)}")
            for which in ("validation", "testing"):
                for step in validation_steps(model_dir, which):
                    if step > start:
                        (model_dir / f"{which}.ckpt-{step}.npz").unlink()
            log(f"{_now()}: resuming from {model_dir / f'ckpt-{start}'} (step {start}) to step {config.nsteps}")
            resumed_from = start
            with atomic_write(model_dir / CONFIG_FILE, "w", encoding="utf-8") as handle:
                json.dump(config.to_dict(), handle, indent=1)  # e.g. a larger nsteps
        else:
            seeds = np.random.SeedSequence(_seed(config.batch_seed, replicate))
            batch_seq, augment_seq = seeds.spawn(2)
            batch_rng, augment_rng = np.random.default_rng(batch_seq), np.random.default_rng(augment_seq)
            trained = M.new_trained_model(config.model, labels=labels, rate=rate, nchannels=nchannels,
                                          loss=config.loss, seed=_seed(config.weights_seed, replicate))
            lineage = None
            if config.start_from:  # transfer learning: the parent's layers, some kept fixed
                from songexplorer_core.transfer import start_from  # noqa: PLC0415

                lineage = start_from(trained, config.start_from, train_layers=config.train_layers,
                                     freeze=config.freeze)
            keras_model = trained.keras_model
            optimizer = _make_optimizer(config.optimizer, config.learning_rate)
            optimizer.build(keras_model.trainable_variables)
            elapsed0, history, start, resumed_from = 0.0, [], 0, None
            with atomic_write(model_dir / CONFIG_FILE, "w", encoding="utf-8") as handle:
                json.dump(config.to_dict(), handle, indent=1)
            M.write_labels_txt(labels, model_dir / "labels.txt")
            with atomic_write(model_dir / D.ANNOTATION_DURATIONS_FILE, "w", encoding="utf-8") as handle:
                D.annotation_durations(dataset).to_csv(handle, index=False)
            _log_header(log, config, dataset, trained, model_dir, replicate)
            if lineage is not None:
                from songexplorer_core.transfer import describe  # noqa: PLC0415

                log(f"transfer: {describe(lineage)}")
            _save_checkpoint(model_dir, 0, trained, optimizer, batch_rng, augment_rng, 0.0, log)
        # validation points are drawn once from the batch seed (shared by all replicates)
        validation_rng = np.random.default_rng(np.random.SeedSequence(config.batch_seed).spawn(3)[2]) \
            if config.batch_seed is not None else None
        steps = _Steps(keras_model, optimizer, loss=config.loss, nchannels=nchannels, nlabels=len(labels))
        _loop(steps, dataset, config, model_dir, trained, start=start, history=history, elapsed0=elapsed0,
              batch_rng=batch_rng, augment_rng=augment_rng, validation_rng=validation_rng, log=log,
              progress=progress, replicate=replicate)
        log(f"{_now()}: finish time")
    finally:
        log.close()
    return ReplicateResult(replicate=replicate, model_dir=model_dir, checkpoint_steps=checkpoint_steps(model_dir),
                           validation_steps=validation_steps(model_dir), history=read_history(model_dir),
                           resumed_from=resumed_from)


def _now() -> str:
    return _dt.datetime.now().isoformat(sep=" ")


def _rng_state(rng: np.random.Generator) -> dict:
    return json.loads(json.dumps(rng.bit_generator.state, default=int))


def _rng_from_state(state: Mapping) -> np.random.Generator:
    generator = np.random.default_rng()
    generator.bit_generator.state = dict(state)
    return generator


def _read_state(checkpoint: Path) -> dict:
    path = checkpoint / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise TrainError(f"{path}: missing or corrupt training state ({error}); delete {checkpoint} to resume from "
                         f"the checkpoint before it") from error


def _save_checkpoint(model_dir: Path, step: int, trained: M.TrainedModel, optimizer, batch_rng, augment_rng,
                     elapsed: float, log: _Log) -> None:
    def write(folder: Path) -> None:
        M.write_trained_model_files(trained, folder)
        np.savez(folder / OPTIMIZER_FILE, **_optimizer_state(optimizer))
        state = dict(step=int(step), elapsed_s=float(elapsed), batch_rng=_rng_state(batch_rng),
                     augment_rng=_rng_state(augment_rng), dropout=_seed_generator_states(trained.keras_model))
        (folder / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")

    folder = model_dir / f"ckpt-{step}"
    M.write_into_new_folder(folder, write)
    log(f'Saving to "{folder}"')


def _log_header(log: _Log, config: TrainConfig, dataset: D.Dataset, trained: M.TrainedModel, model_dir: Path,
                replicate: int) -> None:
    from importlib.metadata import PackageNotFoundError  # noqa: PLC0415
    from importlib.metadata import version as package_version  # noqa: PLC0415

    try:
        version = package_version("songexplorer-dagster")
    except PackageNotFoundError:
        version = "unknown"
    log(f"{_now()}: start time", f"songexplorer-dagster version = {version}", f"hostname = {socket.gethostname()}",
        f"model_dir = {model_dir}", f"replicate = {replicate}")
    settings = config.to_dict()
    settings.update(audio_tic_rate=dataset.rate, audio_nchannels=dataset.nchannels, batch_size=config.mini_batch,
                    labels_touse=",".join(config.labels_to_use), kinds_touse=",".join(config.kinds_to_use))
    for key in sorted(settings):
        value = settings[key]
        log(f"{key} = {','.join(map(str, value)) if isinstance(value, list) else value}")
    spec, rate = config.model, dataset.rate
    stride = trained.stride_tics
    field_t, field_f = M.receptive_field(spec, rate)
    log(f"downsample_by = {stride // spec.hop_tics(rate)}", f"output_tic_rate = {rate / stride}",
        f"receptive_field_time = {field_t} tics = {field_t / rate * 1000:f} ms",
        f"receptive_field_freq = {field_f} bins = {field_f * rate / spec.window_tics(rate):f} Hz")
    trained.keras_model.summary(print_fn=lambda line, *args, **kwargs: log(line))
    log(f"Trainable params: {M.count_parameters(trained.keras_model)}")
    for which in (D.VALIDATION, D.TESTING, D.TRAINING):
        log(f"num {which} labels", *(f"{count:8d} {label}" for label, count in dataset.counts(which).items()))
    for note in dataset.notes:
        log(f"WARNING: {note}")
    log(f"Training from time {_now()}, step: 1",
        "line format is Elapsed %f, Step #%d, Train accuracy %.1f, cross entropy %f")


def _log_confusion(log: _Log, labels: Sequence[str], matrix: np.ndarray) -> None:
    log("Confusion Matrix:", f" {list(labels)}", f" {np.array2string(matrix)}")


def _next_event(step: int, config: TrainConfig) -> int:
    """The next step after ``step`` at which something is saved or validated."""
    candidates = [config.nsteps]
    for period in (config.validate_period, config.checkpoint_period):
        if period > 0:
            candidates.append((step // period + 1) * period)
    return min(candidates)


def _loop(steps: _Steps, dataset: D.Dataset, config: TrainConfig, model_dir: Path, trained: M.TrainedModel, *,
          start: int, history: list[dict], elapsed0: float, batch_rng, augment_rng, validation_rng, log: _Log,
          progress, replicate: int) -> None:
    step = start
    started = time.perf_counter() - elapsed0
    has_validation = len(dataset.indices(D.VALIDATION)) > 0
    has_testing = len(dataset.indices(D.TESTING)) > 0
    while step < config.nsteps:
        event = _next_event(step, config)
        k = min(config.steps_per_call, event - step)
        batches = [dataset.training_batch(config.mini_batch, batch_rng, augmentation=config.augmentation,
                                          augment_rng=augment_rng) for _ in range(k)]
        audio = np.stack([b.audio for b in batches])
        targets = np.stack([b.targets for b in batches])
        before = time.perf_counter() - started
        losses, accuracies = steps.run(audio, targets)
        after = time.perf_counter() - started
        for i in range(k):
            step += 1
            elapsed = before + (after - before) * (i + 1) / k
            row = dict(step=step, train_loss=float(losses[i]), train_accuracy=float(accuracies[i]),
                       validation_loss=math.nan, validation_accuracy=math.nan, elapsed_s=elapsed)
            history.append(row)
            log(f"{elapsed:f},{step},{100 * accuracies[i]:.1f},{losses[i]:f}")
            validate = has_validation and step == event and (
                step == config.nsteps or (config.validate_period > 0 and step % config.validate_period == 0))
            if validate:
                result = _evaluate(steps, dataset, D.VALIDATION, config.evaluation_batch, validation_rng)
                row.update(validation_loss=result["loss"], validation_accuracy=result["accuracy"])
                _write_evaluation(model_dir / f"validation.ckpt-{step}.npz", dataset, D.VALIDATION,
                                  result["logits"], result["targets"], result["offsets"])
                _log_confusion(log, dataset.labels, confusion_matrix(result["logits"], result["targets"], config.loss))
                log(f"{time.perf_counter() - started:f},{step},{100 * result['accuracy']:.1f} Validation")
            if step == config.nsteps and has_testing:
                result = _evaluate(steps, dataset, D.TESTING, config.evaluation_batch, validation_rng)
                _write_evaluation(model_dir / f"testing.ckpt-{step}.npz", dataset, D.TESTING,
                                  result["logits"], result["targets"], result["offsets"])
                _log_confusion(log, dataset.labels, confusion_matrix(result["logits"], result["targets"], config.loss))
                log(f"{time.perf_counter() - started:f},{step},{100 * result['accuracy']:.1f} Testing")
            # every validated step is also a checkpoint: accuracy may choose it as the best
            if validate or (step == event and (step == config.nsteps or (
                    config.checkpoint_period > 0 and step % config.checkpoint_period == 0))):
                # history first: killed between the two, history.csv holds every step up to the
                # last checkpoint (and a few beyond, which resuming drops), never fewer
                _write_history(model_dir, history)
                _save_checkpoint(model_dir, step, trained, steps.optimizer, batch_rng, augment_rng,
                                 time.perf_counter() - started, log)
            if progress is not None:
                progress(TrainProgress(replicate=replicate, nreplicates=config.nreplicates, step=step,
                                       nsteps=config.nsteps, train_loss=row["train_loss"],
                                       train_accuracy=row["train_accuracy"], elapsed_s=row["elapsed_s"],
                                       validation_accuracy=None if math.isnan(row["validation_accuracy"])
                                       else row["validation_accuracy"]))
    if not history or history[-1]["step"] != step:
        _write_history(model_dir, history)
