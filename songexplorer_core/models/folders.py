"""Trained-model folders: :class:`TrainedModel`, ``model.keras`` + ``model.json`` written
atomically and read back, ``labels.txt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from songexplorer_core.labels import LabelError, check_labels
from songexplorer_core.models.constants import LOSSES, METADATA_FILE, MODEL_FILE, MODEL_FORMAT, ModelError
from songexplorer_core.models.spec import ModelSpec
from songexplorer_core.models.layers import _keras, _layer_classes
from songexplorer_core.models.builder import build_model, count_parameters, get_architecture

# ---------------------------------------------------------------------------------------------
# trained models


@dataclass
class TrainedModel:
    """A Keras model with everything needed to use it on recordings.

    Attributes:
        keras_model: the fully convolutional network (raw logits out).
        labels: output labels, in output order (``labels.txt``).
        rate: tic rate of the recordings it was trained on, Hz.
        nchannels: audio channels.
        spec: its architecture parameters.
        loss: ``exclusive`` (softmax over labels) or ``overlapped`` (a sigmoid per label).
        context_tics, shiftby_tics, stride_tics: the tap geometry (see the module docstring).
    """

    keras_model: Any
    labels: list[str]
    rate: int
    nchannels: int
    spec: ModelSpec
    loss: str = "exclusive"
    context_tics: int = 0
    shiftby_tics: int = 0
    stride_tics: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.labels = [str(x) for x in self.labels]
        if self.loss not in LOSSES:
            raise ModelError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if not self.context_tics:
            self.context_tics = self.spec.context_tics(self.rate)
        if not self.shiftby_tics:
            self.shiftby_tics = self.spec.shiftby_tics(self.rate)
        if not self.stride_tics:
            self.stride_tics = get_architecture(self.spec.architecture).stride_tics(self.spec, self.rate)

    @property
    def output_rate(self) -> float:
        """Taps per second, Hz (625 for the defaults)."""
        return self.rate / self.stride_tics

    def input_tics(self, ntaps: int) -> int:
        """Input length giving ``ntaps`` output taps."""
        return self.context_tics + (int(ntaps) - 1) * self.stride_tics

    def metadata(self) -> dict:
        """What ``model.json`` holds."""
        return {
            "format": MODEL_FORMAT,
            "labels": list(self.labels),
            "rate": int(self.rate),
            "nchannels": int(self.nchannels),
            "loss": self.loss,
            "context_tics": int(self.context_tics),
            "shiftby_tics": int(self.shiftby_tics),
            "stride_tics": int(self.stride_tics),
            "spec": self.spec.to_dict(),
            "parameters": count_parameters(self.keras_model),
            **({"extra": self.extra} if self.extra else {}),
        }


def new_trained_model(spec: ModelSpec, *, labels: Sequence[str], rate: int, nchannels: int = 1,
                      loss: str = "exclusive", seed: int | None = None) -> TrainedModel:
    """An untrained :class:`TrainedModel` (freshly initialised weights)."""
    keras_model = build_model(spec, labels=labels, rate=rate, nchannels=nchannels, seed=seed)
    return TrainedModel(keras_model=keras_model, labels=list(labels), rate=int(rate), nchannels=int(nchannels),
                        spec=spec, loss=loss)


def _replace_folder(tmp: Path, folder: Path) -> None:
    """Move a finished temporary folder onto ``folder``, replacing any previous one."""
    if folder.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
        os.replace(folder, trash / folder.name)
        os.replace(tmp, folder)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, folder)


def write_into_new_folder(folder: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Run ``writer(tmp_folder)`` on a temporary folder beside ``folder``, then rename it to
    ``folder`` (replacing an old one): readers never see a half-written folder."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.mkdir()  # unlike mkdtemp, honours the umask (a checkpoint others may read)
    try:
        writer(tmp)
        _replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def write_trained_model_files(tm: TrainedModel, folder: Path) -> None:
    """Write ``model.keras`` and ``model.json`` into an existing folder (not atomic by itself)."""
    _layer_classes()
    tm.keras_model.save(folder / MODEL_FILE)
    (folder / METADATA_FILE).write_text(json.dumps(tm.metadata(), indent=1), encoding="utf-8")


def save_trained_model(tm: TrainedModel, folder: str | os.PathLike) -> Path:
    """Save ``folder/model.keras`` and ``folder/model.json`` atomically (a temporary folder,
    then a rename); an existing folder is replaced whole."""
    return write_into_new_folder(folder, lambda tmp: write_trained_model_files(tm, tmp))


def read_model_metadata(folder: str | os.PathLike) -> dict:
    """``model.json`` of a trained-model folder, checked; :class:`ModelError` names the folder."""
    folder = Path(folder)
    path = folder / METADATA_FILE
    if not folder.is_dir():
        raise ModelError(f"{folder}: no such trained-model folder (expected {METADATA_FILE} and {MODEL_FILE} in it)")
    if not path.is_file():
        raise ModelError(f"{folder}: not a trained-model folder: {METADATA_FILE} is missing "
                         f"(the checkpoint was not completely written; use another checkpoint or train again)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: corrupt model description ({error}); use another checkpoint or train again") from error
    required = ("format", "labels", "rate", "nchannels", "loss", "context_tics", "shiftby_tics", "stride_tics", "spec")
    missing = [k for k in required if k not in meta] if isinstance(meta, dict) else list(required)
    if missing:
        raise ModelError(f"{path}: corrupt model description: missing {missing}; use another checkpoint or train again")
    if meta["format"] != MODEL_FORMAT:
        raise ModelError(f"{path}: written as {meta['format']!r}, this version reads {MODEL_FORMAT!r}")
    if not isinstance(meta["labels"], list):
        raise ModelError(f"{path}: corrupt model description: labels must be a list, not {meta['labels']!r}")
    try:  # labels become file names (classify's <stem>-<label>.wav): names, never paths
        check_labels(meta["labels"], where=str(path))
    except LabelError as error:
        raise ModelError(f"{error} Use a model whose labels are names, or train again.") from error
    return meta


def load_trained_model(folder: str | os.PathLike, *, compile: bool = False) -> TrainedModel:  # noqa: A002
    """Load a folder written by :func:`save_trained_model` (or a training checkpoint ``ckpt-N``).

    Raises:
        ModelError: naming the folder when ``model.json`` or ``model.keras`` is missing or corrupt.
    """
    folder = Path(folder)
    meta = read_model_metadata(folder)
    model_path = folder / MODEL_FILE
    if not model_path.is_file():
        raise ModelError(f"{folder}: {MODEL_FILE} is missing (the checkpoint was not completely written; "
                         f"use another checkpoint or train again)")
    keras = _keras()
    _layer_classes()
    try:
        keras_model = keras.saving.load_model(model_path, compile=compile)
    except Exception as error:  # noqa: BLE001 (zip, h5 and config errors all mean "corrupt")
        raise ModelError(f"{model_path}: corrupt or unreadable Keras model ({type(error).__name__}: {error}); "
                         f"use another checkpoint or train again") from error
    try:
        spec = ModelSpec.from_dict(meta["spec"])
    except (ModelError, TypeError, ValueError) as error:
        raise ModelError(f"{folder / METADATA_FILE}: corrupt model spec ({error})") from error
    outputs = _output_count(keras_model)
    if outputs is not None and outputs != len(meta["labels"]):
        raise ModelError(f"{folder / METADATA_FILE}: lists {len(meta['labels'])} labels {list(meta['labels'])} but "
                         f"{model_path} outputs {outputs} per tap; the two files come from different models "
                         f"(use another checkpoint or train again)")
    return TrainedModel(keras_model=keras_model, labels=list(meta["labels"]), rate=int(meta["rate"]),
                        nchannels=int(meta["nchannels"]), spec=spec, loss=meta["loss"],
                        context_tics=int(meta["context_tics"]), shiftby_tics=int(meta["shiftby_tics"]),
                        stride_tics=int(meta["stride_tics"]), extra=dict(meta.get("extra", {})))


def _output_count(keras_model) -> int | None:
    """Outputs per tap of a Keras model (its last axis), None when its shape does not say."""
    try:
        shape = keras_model.output_shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(shape, list):
        return None
    last = shape[-1] if shape else None
    return int(last) if isinstance(last, int) else None


def write_labels_txt(labels: Sequence[str], path: str | os.PathLike) -> Path:
    """SongExplorer's ``labels.txt``: labels separated by ``\\n``, no trailing newline (atomic)."""
    from songexplorer_core.atomic import atomic_write  # noqa: PLC0415

    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("\n".join(labels))
    return Path(path)


def read_labels_txt(path: str | os.PathLike) -> list[str]:
    """Labels of a ``labels.txt``, one per line (blank lines ignored), each checked
    (:func:`songexplorer_core.labels.check_label`: :class:`~songexplorer_core.labels.LabelError`
    names the file)."""
    lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    return list(check_labels([line.strip() for line in lines if line.strip()], where=str(path)))


def model_identity(folder: str | os.PathLike, **extra) -> dict:
    """What names a trained model in the outputs it makes: its folder (absolute), checkpoint
    (``checkpoint.txt`` of a bundle, else the ``ckpt-<N>`` in its name) and ``sha256`` of its
    ``model.json`` and ``model.keras`` bytes (equal digests: the same network, wherever copied).
    ``extra`` (e.g. ``model_version``) is added as is."""
    folder = Path(folder).resolve()
    digest = hashlib.sha256()
    for name in (METADATA_FILE, MODEL_FILE):
        path = folder / name
        if not path.is_file():
            raise ModelError(f"{folder}: not a trained-model folder: {name} is missing")
        digest.update(name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    checkpoint_file = folder / "checkpoint.txt"
    if checkpoint_file.is_file():
        checkpoint = checkpoint_file.read_text(encoding="utf-8").strip()
    else:
        match = re.fullmatch(r"ckpt-(\d+)", folder.name)
        checkpoint = match.group(1) if match else ""
    return {"folder": str(folder), "checkpoint": checkpoint, "sha256": digest.hexdigest(), **extra}


def thresholds_model_folder(thresholds_path: str | os.PathLike) -> Path | None:
    """The trained model a thresholds file belongs to, where its folder shows it: a bundle
    (``model.keras`` beside it) or a training folder (``ckpt-<N>/`` of ``thresholds*.ckpt-<N>.csv``)."""
    path = Path(thresholds_path)
    if (path.parent / MODEL_FILE).is_file():
        return path.parent
    match = re.search(r"\.ckpt-(\d+)\.csv$", path.name)
    if match and (path.parent / f"ckpt-{match.group(1)}" / MODEL_FILE).is_file():
        return path.parent / f"ckpt-{match.group(1)}"
    return None
