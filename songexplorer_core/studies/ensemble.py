"""An ensemble: one model folder whose network averages its members' probabilities.

The ensemble is an ordinary trained-model folder (``model.keras`` + ``model.json``): its Keras
model feeds the audio to every member and its output layer ``AverageProbabilities``
(``songexplorer_core.models.layers``) returns the logits of the members' mean probability, so
``classify`` (softmax or sigmoid of the logits) gives exactly that mean, and ``classify``,
``ethogram``, the ``probabilities`` asset and MLflow's Keras flavour use it like any model.
Members must agree on labels (and their order), loss, tic rate, channels and tap geometry
(context, shift and stride in tics); they may differ in anything else (seeds, learning rate,
kernel sizes, the annotations they saw).

Its thresholds come from its own validation predictions: every annotation any member validated
on, cut from the recording at the tic the first such member centred it on, scored by the mean
probability of the members that validated on it. For replicates (one validation set) that is the
ensemble itself; for the folds of a cross-validation, whose validation sets are disjoint, each
annotation's out-of-fold prediction (``ensemble.json`` says which, with the counts). ``validation.ckpt-0.npz`` holds them and ``accuracy`` turns them into
``thresholds*.ckpt-0.csv`` as for a training.

Layout of the ensemble folder ``OUT``: ``ckpt-0/`` (the model), ``validation.ckpt-0.npz``,
``thresholds*.ckpt-0.csv``, ``accuracy*``, ``labels.txt``, ``annotation-durations.csv``,
``ensemble.json`` and ``model/`` (the bundle classification and MLflow take:
``training_run.bundle_checkpoint``). Written into a temporary folder and renamed: an error
leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from songexplorer_core.studies.plan import StudyError

#: Settings every member must share, as ``model.json`` names them.
MUST_MATCH = ("labels", "loss", "rate", "nchannels", "context_tics", "shiftby_tics", "stride_tics")
_KEY_FIELDS = ("wav", "start", "stop", "kind", "label", "offset_tic")


class EnsembleError(StudyError):
    """Models that cannot be combined; the message names the member, what differs and the fix."""


@dataclass(frozen=True)
class Member:
    """One model of an ensemble: its training folder and the checkpoint used."""

    model_dir: Path
    checkpoint: int

    @property
    def checkpoint_dir(self) -> Path:
        return self.model_dir / f"ckpt-{self.checkpoint}"

    @property
    def validation_file(self) -> Path:
        return self.model_dir / f"validation.ckpt-{self.checkpoint}.npz"


def _member_of_training(model_dir: Path) -> Member:
    from songexplorer_core.train import checkpoint_steps, validation_steps

    validated = [s for s in validation_steps(model_dir) if s in checkpoint_steps(model_dir)]
    if not validated:
        raise EnsembleError(f"{model_dir}: no validated checkpoint (ckpt-<N> with validation.ckpt-<N>.npz); "
                            f"ensemble finished trainings that had a validation set")
    trial = model_dir.parent / "trial.json"
    if trial.is_file():
        chosen = json.loads(trial.read_text(encoding="utf-8")).get("checkpoint")
        if chosen in validated:
            return Member(model_dir, int(chosen))
    return Member(model_dir, validated[-1])  # accuracy's default: the last validated checkpoint


def find_members(paths: Sequence[str | os.PathLike]) -> list[Member]:
    """The members named by ``paths``: a study folder (every trial's model), a logs folder
    (its ``train_<r>r`` replicates) or a training folder (``.../train_1r``).

    Raises:
        EnsembleError: a path that is none of these, or fewer than two members.
    """
    def collect(path: Path) -> list[Member]:
        if (path / "study.json").is_file():
            study = json.loads((path / "study.json").read_text(encoding="utf-8"))
            return [m for trial in study["trials"] for m in collect(path / trial["name"])]
        if any(path.glob("ckpt-*")):
            return [_member_of_training(path)]
        if path.is_dir() and any(path.glob("train_*r")):
            return [_member_of_training(p) for p in sorted(path.glob("train_*r")) if p.is_dir()]
        raise EnsembleError(f"{path}: not a study folder, logs folder or training folder (no study.json, "
                            f"train_<r>r/ or ckpt-<N>/); give folders written by songexplorer train or a study")

    members = [m for path in map(Path, paths) for m in collect(path)]
    if len(members) < 2:
        raise EnsembleError(f"an ensemble needs at least two models; {list(map(str, paths))} hold {len(members)}")
    return members


def check_members(members: Sequence[Member]) -> dict:
    """The shared ``model.json`` settings; :class:`EnsembleError` names the first member that
    differs from the first one, what differs, and the fix."""
    from songexplorer_core.models import read_model_metadata

    first = read_model_metadata(members[0].checkpoint_dir)
    for member in members[1:]:
        meta = read_model_metadata(member.checkpoint_dir)
        differ = [k for k in MUST_MATCH if meta[k] != first[k]]
        if differ:
            details = "; ".join(f"{k} {meta[k]!r} vs {first[k]!r}" for k in differ)
            raise EnsembleError(f"{member.checkpoint_dir} cannot join {members[0].checkpoint_dir} in an ensemble: "
                                f"{details}. Ensemble only models trained with the same labels (in the same order), "
                                f"loss, sample rate, channels, context, shift and stride (e.g. one study's folds or "
                                f"replicates)")
    return first


def _validation_examples(member: Member) -> dict:
    with np.load(member.validation_file, allow_pickle=False) as npz:
        missing = [k for k in _KEY_FIELDS if k not in npz]
        if missing:
            raise EnsembleError(f"{member.validation_file}: lacks {missing}; retrain with this version to ensemble it")
        return {k: np.asarray(npz[k]) for k in npz.files}


def ensemble_validation(members: Sequence[Member], ensemble, ground_truth: str | os.PathLike,
                        batch: int = 256) -> tuple[dict, dict]:
    """The ensemble's validation arrays (``train._write_evaluation``'s fields; ``logits`` are
    the logits of the mean probability) and a description (``method``, ``examples``, members per
    example).

    Every annotation any member validated on is one example, at the tic the first member that
    validated it centred it on, re-scored from the audio under ``ground_truth`` (members with
    other batch seeds drew other points inside range annotations): by the ensemble itself when
    every member validated every example, else by the mean probability of the members that
    validated it (out-of-fold for the folds of a cross-validation).
    """
    from songexplorer_core import dataset as D
    from songexplorer_core import models as M
    from songexplorer_core.audio import read_recording

    root = Path(ground_truth)
    examples: dict[tuple, dict] = {}
    taps = None
    for index, member in enumerate(members):
        arrays = _validation_examples(member)
        if taps is not None and arrays["groundtruth"].shape[1] != taps:
            raise EnsembleError(f"{member.validation_file}: {arrays['groundtruth'].shape[1]} taps per example, the "
                                f"others {taps}; ensemble models trained with the same parallelize")
        taps = arrays["groundtruth"].shape[1]
        for i in range(len(arrays["logits"])):
            key = tuple(str(arrays[k][i]) for k in _KEY_FIELDS[:5])
            example = examples.setdefault(key, {"offset": int(arrays["offset_tic"][i]),
                                                "groundtruth": arrays["groundtruth"][i],
                                                "recording": str(arrays["recording"][i]), "members": []})
            example["members"].append(index)
    if not examples:
        raise EnsembleError("the members have no validation examples; ensemble trainings that had a validation set")
    keys = sorted(examples)
    geometry = D.Geometry(context_tics=ensemble.context_tics, shiftby_tics=ensemble.shiftby_tics,
                          stride_tics=ensemble.stride_tics, parallelize=int(taps))
    audio: dict[str, np.ndarray] = {}
    windows = []
    for key in keys:
        example = examples[key]
        recording = example["recording"]
        if recording not in audio:
            path = root / recording
            if not path.is_file():
                raise EnsembleError(f"{path}: the recording the members validated on is not there; give the "
                                    f"ground-truth folder they were trained on (--groundtruth)")
            audio[recording] = read_recording(path, dtype="float32")[1]
        first = example["offset"] - geometry.before_tics
        windows.append(audio[recording][first:first + geometry.input_tics])
    windows = np.stack(windows).astype(np.float32)

    def probabilities(keras_model, x):
        out = []
        for start in range(0, len(x), batch):
            logits = np.asarray(keras_model(x[start:start + batch], training=False), dtype=np.float64)
            out.append(logits)
        logits = np.concatenate(out)
        if ensemble.loss == "exclusive":
            e = np.exp(logits - logits.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
        return 1 / (1 + np.exp(-logits))

    counts = np.array([len(examples[k]["members"]) for k in keys])
    if counts.min() == len(members):
        method = "ensemble"
        mean = probabilities(ensemble.keras_model, windows)
    else:
        method = "out-of-fold" if counts.max() == 1 else "mean of the members that validated each example"
        total = np.zeros(windows.shape[:1] + (taps, len(ensemble.labels)))
        for index, member in enumerate(members):
            rows = np.array([index in examples[k]["members"] for k in keys])
            if rows.any():
                network = M.load_trained_model(member.checkpoint_dir).keras_model
                total[rows] += probabilities(network, windows[rows])
        mean = total / counts[:, None, None]
    if ensemble.loss == "exclusive":
        logits = np.log(np.maximum(mean, 1e-30))
    else:
        mean = np.clip(mean, 1e-30, 1 - 1e-7)
        logits = np.log(mean) - np.log1p(-mean)
    arrays = {
        "logits": logits.astype(np.float32), "groundtruth": np.stack([examples[k]["groundtruth"] for k in keys]),
        "labels": np.asarray(ensemble.labels, dtype=str), "wav": np.array([k[0] for k in keys]),
        "recording": np.array([examples[k]["recording"] for k in keys]),
        "start": np.array([int(k[1]) for k in keys], np.int64), "stop": np.array([int(k[2]) for k in keys], np.int64),
        "kind": np.array([k[3] for k in keys]), "label": np.array([k[4] for k in keys]),
        "offset_tic": np.array([examples[k]["offset"] for k in keys], np.int64),
    }
    return arrays, {"method": method, "examples": len(keys), "members_per_example_min": int(counts.min()),
                    "members_per_example_max": int(counts.max())}


def build_ensemble_model(members: Sequence[Member]):
    """A ``TrainedModel`` whose network averages the members' probabilities."""
    from songexplorer_core import models as M
    from songexplorer_core.models.layers import _keras, _layer_classes

    keras = _keras()
    layers = _layer_classes()
    loaded = [M.load_trained_model(m.checkpoint_dir) for m in members]
    first = loaded[0]
    audio = keras.Input(shape=(None, first.nchannels), name="input")
    outputs = []
    for i, trained in enumerate(loaded, start=1):
        network = trained.keras_model
        network.name = f"member{i}"  # nested models need distinct names
        outputs.append(network(audio))
    logits = layers["AverageProbabilities"](loss=first.loss, name="logits")(outputs)
    model = keras.Model(audio, logits, name="ensemble")
    extra = {"ensemble": {"members": [str(m.checkpoint_dir) for m in members]}}
    return M.TrainedModel(keras_model=model, labels=first.labels, rate=first.rate, nchannels=first.nchannels,
                          spec=first.spec, loss=first.loss, context_tics=first.context_tics,
                          shiftby_tics=first.shiftby_tics, stride_tics=first.stride_tics, extra=extra)


@dataclass
class EnsembleResult:
    """What :func:`make_ensemble` wrote: the folder, its bundle (``OUT/model``), the loaded
    model, the accuracy report of its validation predictions and how they were made."""

    folder: Path
    bundle: Path
    trained: object
    report: object
    validation: dict
    members: list[Member]


def make_ensemble(paths: Sequence[str | os.PathLike], out: str | os.PathLike, *, ground_truth=None,
                  ratios: Sequence[float] = (1.0,)) -> EnsembleResult:
    """Combine the models under ``paths`` (:func:`find_members`) into the ensemble folder ``out``
    (layout in the module docstring).

    Args:
        ground_truth: the ground-truth folder the members were trained on (default: the one the
            first path's ``study.json`` names).

    Raises:
        EnsembleError: too few members, members that disagree (:func:`check_members`), ``out``
            already existing; nothing is written then.
    """
    from songexplorer_core import accuracy as A
    from songexplorer_core import models as M
    from songexplorer_core.dataset import ANNOTATION_DURATIONS_FILE
    from songexplorer_core.training_run import bundle_checkpoint

    out = Path(out)
    if out.exists():
        raise EnsembleError(f"{out}: exists; give a new folder for the ensemble")
    members = find_members(paths)
    check_members(members)
    if ground_truth is None:
        study = Path(paths[0]) / "study.json"
        if not study.is_file():
            raise EnsembleError("give the ground-truth folder the members were trained on (--groundtruth): the "
                                "ensemble's thresholds come from its own predictions on their validation sounds")
        ground_truth = json.loads(study.read_text(encoding="utf-8"))["ground_truth"]
    trained = build_ensemble_model(members)
    arrays, validation = ensemble_validation(members, trained, ground_truth)

    def write(folder: Path) -> None:
        M.save_trained_model(trained, folder / "ckpt-0")
        np.savez(folder / "validation.ckpt-0.npz", **arrays)
        report = A.accuracy_report(folder, ratios=tuple(ratios))
        A.write_accuracy_outputs(report, folder, plots="best")
        M.write_labels_txt(trained.labels, folder / "labels.txt")
        durations = members[0].model_dir / ANNOTATION_DURATIONS_FILE
        if durations.exists():
            shutil.copy2(durations, folder / ANNOTATION_DURATIONS_FILE)
        (folder / "ensemble.json").write_text(json.dumps(
            {"members": [{"model_dir": str(m.model_dir), "checkpoint": m.checkpoint} for m in members],
             "validation": validation, "labels": trained.labels}, indent=1), encoding="utf-8")
        bundle_checkpoint(folder, 0, folder / "model")

    M.write_into_new_folder(out, write)
    report = A.accuracy_report(out, ratios=tuple(ratios))
    return EnsembleResult(folder=out, bundle=out / "model", trained=M.load_trained_model(out / "model"),
                          report=report, validation=validation, members=members)
