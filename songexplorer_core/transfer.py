"""Transfer learning: start a training from another model's layers (SongExplorer's "Transfer
Learning", its ``ensemble-transfer`` plug-in, for one parent model).

A parent is a trained-model folder (``model.keras`` + ``model.json``: a checkpoint, a logged
bundle, an autoencoder's ``encoder/``, another project's model) or a registered MLflow model
version (``models:/<name>/<version>``, ``models:/<name>@<alias>``, ``runs:/<run id>``), which
:func:`resolve_parent` downloads into a folder beside the training with a ``lineage.json`` naming
where it came from.

The new network is built from the parent's :class:`~songexplorer_core.models.ModelSpec` (the
trainer may change only what holds no weights, such as dropout) for the new label set;
:func:`start_from` copies every layer with weights from the parent by name, except the output
layer when the labels differ (it is new, randomly initialised), and keeps the layers asked for
fixed (``trainable = False``: neither the optimizer nor batch statistics change them). What was
copied, what is new, what is frozen and where the parent came from is written into the model's
``model.json`` (``extra.transfer``), so every checkpoint and the logged bundle carry their
lineage; ``training_run`` turns it into MLflow tags.

Rates: a parent trained at another tic rate is used only where its network means the same thing
there: a spectrogram (bin width 1000 / ``window_ms`` Hz at any rate) limited to a band
(``range_hz``) inside both Nyquist frequencies, with every weight of the same shape. A waveform
network's kernels count tics and a mel-cepstrum's filter bank spans 0 Hz to Nyquist, so those
are refused at another rate, naming both rates and the fix.

TensorFlow is imported inside the functions that build or load networks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from songexplorer_core import models as M

#: File written into a downloaded parent's folder: where it came from (MLflow run, version, URI).
LINEAGE_FILE = "lineage.json"
#: The layer every label set gets anew (``builder.build_convolutional``'s final convolution).
OUTPUT_LAYER = "output"
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?$")
_RUN_URI = re.compile(r"^runs:/(?P<run_id>[0-9a-fA-F]+)(?:/(?P<path>.*))?$")


class TransferError(ValueError):
    """A training cannot start from that model; the message names the model and the fix."""


@dataclass(frozen=True)
class Parent:
    """A model to start from, in a local folder.

    Attributes:
        folder: the trained-model folder (``model.keras`` + ``model.json``).
        source: what was asked for (a folder or an MLflow URI).
        lineage: where it came from: ``source``, and for MLflow models ``model_uri``,
            ``registered_model``, ``model_version``, ``mlflow_run_id``, ``tracking_uri``.
    """

    folder: Path
    source: str
    lineage: dict


def is_mlflow_uri(source: str) -> bool:
    """True for ``models:/...`` and ``runs:/...`` addresses."""
    return bool(_MODEL_URI.match(source) or _RUN_URI.match(source))


def model_folder(path: str | os.PathLike) -> Path:
    """The trained-model folder a path names: itself (``model.json`` inside), a training's bundle
    ``<path>/model``, an autoencoder's ``<path>/encoder``, a replicate folder's last checkpoint
    (``train_1r/ckpt-<N>``) or a logs folder's first replicate's last checkpoint."""
    path = Path(path)
    if not path.is_dir():
        raise TransferError(f"{path}: no such model folder; give a trained-model folder (model.keras and "
                            f"model.json), a training's logs folder, or an MLflow models:/NAME/VERSION URI")
    candidates = [path, path / "model", path / "encoder"]
    for folder in candidates:
        if (folder / M.METADATA_FILE).is_file():
            return folder
    for replicate in [path, *sorted(path.glob("train_*r"))]:
        steps = sorted(int(m.group(1)) for p in replicate.glob("ckpt-*")
                       if (m := re.fullmatch(r"ckpt-(\d+)", p.name)) and (p / M.METADATA_FILE).is_file())
        if steps:
            return replicate / f"ckpt-{steps[-1]}"
    raise TransferError(f"{path}: holds no trained model (no {M.METADATA_FILE} in it, in model/, encoder/ or a "
                        f"ckpt-<N>/ of it or of train_<r>r/); give a trained-model folder or an MLflow URI")


def read_lineage(folder: str | os.PathLike) -> dict:
    """``lineage.json`` of a parent folder (``{}`` when it has none: a folder given directly)."""
    path = Path(folder) / LINEAGE_FILE
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TransferError(f"{path}: corrupt ({error}); delete the folder and download the model again") from error
    return value if isinstance(value, dict) else {}


def resolve_parent(source: str, *, tracking=None, dst: str | os.PathLike | None = None) -> Parent:
    """The parent model ``source`` names, as a local folder.

    Args:
        source: a folder (see :func:`model_folder`), ``models:/<name>/<version>``,
            ``models:/<name>@<alias>`` (e.g. ``@champion``) or ``runs:/<run id>``; with a
            tracking store also ``3`` / ``v3`` (that version of its registered model) or
            ``champion``.
        tracking: ``tracking.TrackingConfig`` of the store holding MLflow models.
        dst: where an MLflow model is downloaded (its ``trained_model`` folder, with
            ``lineage.json``); a folder already holding the same model is reused (a resumed
            training). Folders given directly are used where they are.

    Raises:
        TransferError: no such folder or model, or an MLflow URI without a tracking store.
    """
    source = str(source).strip()
    if tracking is not None and not Path(source).exists():
        if re.fullmatch(r"v?\d+", source):  # a version of the project's registered model
            source = f"models:/{tracking.registered_model}/{source.lstrip('v')}"
        elif source == "champion":
            source = f"models:/{tracking.registered_model}@champion"
    if not is_mlflow_uri(source):
        folder = model_folder(source)
        lineage = {"source": source, "parent_folder": str(folder.resolve()), **read_lineage(folder)}
        return Parent(folder=folder, source=source, lineage=lineage)
    if tracking is None:
        raise TransferError(f"{source}: an MLflow model needs a tracking store: give --mlflow URI|DIR (or train in a "
                            f"project, whose store is used), or give the model's folder instead")
    if dst is None:
        raise TransferError(f"{source}: no folder to download it into")
    from songexplorer_core.tracking import MODEL_FOLDER_ARTIFACT

    client = tracking.client()
    match = _MODEL_URI.match(source)
    try:
        if match:
            name = match["name"]
            version = (client.get_model_version(name, match["version"]) if match["version"]
                       else client.get_model_version_by_alias(name, match["alias"]))
            run_id, number = version.run_id, str(version.version)
            lineage = {"source": source, "model_uri": f"models:/{name}/{number}", "registered_model": name,
                       "model_version": number, "mlflow_run_id": run_id}
        else:
            run_match = _RUN_URI.match(source)
            run_id = run_match["run_id"]
            client.get_run(run_id)
            lineage = {"source": source, "model_uri": f"runs:/{run_id}/{MODEL_FOLDER_ARTIFACT}",
                       "mlflow_run_id": run_id}
    except Exception as error:  # noqa: BLE001 - MLflow raises its own exceptions for a missing model or run
        raise TransferError(f"{source}: not found in the tracking store {tracking.tracking_uri} "
                            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from error
    lineage["tracking_uri"] = tracking.tracking_uri
    dst = Path(dst)
    if (dst / M.METADATA_FILE).is_file() and read_lineage(dst).get("mlflow_run_id") == run_id:
        return Parent(folder=dst, source=source, lineage={**read_lineage(dst), "parent_folder": str(dst.resolve())})
    import mlflow

    staging = dst.with_name(f".{dst.name}.download")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        downloaded = Path(mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=MODEL_FOLDER_ARTIFACT, dst_path=str(staging),
            tracking_uri=tracking.tracking_uri))
    except Exception as error:  # noqa: BLE001
        shutil.rmtree(staging, ignore_errors=True)
        raise TransferError(f"{source}: its run {run_id} has no {MODEL_FOLDER_ARTIFACT} folder to start from "
                            f"({type(error).__name__})") from error
    (downloaded / LINEAGE_FILE).write_text(json.dumps(lineage, indent=1), encoding="utf-8")
    if dst.exists():
        shutil.rmtree(dst)
    downloaded.rename(dst)
    shutil.rmtree(staging, ignore_errors=True)
    return Parent(folder=dst, source=source, lineage={**lineage, "parent_folder": str(dst.resolve())})


def parent_spec(folder: str | os.PathLike, *, dropout_rate: float | None = None) -> M.ModelSpec:
    """The parent's network settings (read from ``model.json``, no TensorFlow), with another
    ``dropout_rate`` if given (dropout holds no weights)."""
    meta = M.read_model_metadata(folder)
    spec = M.ModelSpec.from_dict(meta["spec"])
    if dropout_rate is not None:
        from dataclasses import replace

        spec = replace(spec, dropout_rate=float(dropout_rate))
    return spec


#: A fine-tuning's learning rate is the recipe's times this when none is given (the command
#: line's ``--learning-rate``, Dagster's ``learning_rate`` left empty): the parent's layers are
#: adjusted, not relearnt. Measured by ``benchmarks/transfer.py`` (docs/training.md, "Transfer
#: learning"): macro F1 at a fifth of the recipe's 0.001 was higher than at 0.001 on the task
#: where transfer helps (another rig) and on the one where it does not (distractors).
FINE_TUNE_LEARNING_RATE_FACTOR = 0.2


def transfer_config(config, folder: str | os.PathLike, *, train_layers: Sequence[str] = (), freeze: int = 0,
                    dropout_rate: float | None = None, scale_learning_rate: bool = False):
    """``config`` (a ``train.TrainConfig``) starting from the model in ``folder``: the parent's
    network (with ``dropout_rate`` if given), ``start_from``, ``train_layers`` and ``freeze`` set;
    with ``scale_learning_rate`` (for a learning rate nobody chose: the recipe's) its learning rate
    times :data:`FINE_TUNE_LEARNING_RATE_FACTOR`."""
    from dataclasses import replace

    rate = config.learning_rate * FINE_TUNE_LEARNING_RATE_FACTOR if scale_learning_rate else config.learning_rate
    return replace(config, model=parent_spec(folder, dropout_rate=dropout_rate), start_from=str(folder),
                   train_layers=tuple(train_layers or ()), freeze=int(freeze or 0), learning_rate=rate)


def check_rate(folder: str | os.PathLike, *, rate: int, nchannels: int | None = None) -> None:
    """Refuse a parent trained at another tic rate unless its network carries over (a
    spectrogram limited to a band inside both Nyquist frequencies), or on other channels.
    Reads ``model.json`` only; the weights' shapes are compared by :func:`start_from`."""
    meta = M.read_model_metadata(folder)
    parent_rate, parent_channels = int(meta["rate"]), int(meta["nchannels"])
    if nchannels is not None and int(nchannels) != parent_channels:
        raise TransferError(f"{folder}: was trained on {parent_channels}-channel recordings, these have {nchannels}; "
                            f"start from a {nchannels}-channel model or train from scratch")
    if int(rate) == parent_rate:
        return
    spec = M.ModelSpec.from_dict(meta["spec"])
    why = _rate_problem(spec, parent_rate, int(rate))
    if why:
        raise TransferError(f"{folder}: trained at {parent_rate} Hz, these recordings are {rate} Hz and its "
                            f"{spec.representation} network does not carry over ({why}); resample the recordings "
                            f"to {parent_rate} Hz or train from scratch")


def _rate_problem(spec: M.ModelSpec, parent_rate: int, rate: int) -> str:
    if spec.representation not in ("spectrogram", "spectrogram-with-phase"):
        return ("its kernels count tics" if spec.representation == "waveform"
                else "its mel filter bank spans 0 Hz to the Nyquist frequency")
    if not spec.range_hz:
        return "its spectrogram spans 0 Hz to the Nyquist frequency: a band (range_hz) inside both would carry over"
    if spec.range_hz[1] > min(parent_rate, rate) / 2:
        return f"its band {spec.range_hz[0]:g}-{spec.range_hz[1]:g} Hz reaches past {min(parent_rate, rate) / 2:g} Hz"
    try:
        M.check_geometry(spec, rate)
    except M.ModelError as error:
        return str(error)
    if spec.context_tics(rate) * parent_rate != spec.context_tics(parent_rate) * rate:
        return "its context is not a whole number of tics at both rates"
    return ""


def weighted_layer_names(keras_model) -> list[str]:
    """Names of the layers holding weights, in the network's order (the convolutional network:
    ``conv1`` ... ``convK``, ``batchnormK`` with batch normalisation, ``dense1`` ..., ``output``):
    what ``train_layers`` and ``freeze`` choose from."""
    return [layer.name for layer in keras_model.layers if layer.weights]


def frozen_layers(names: Sequence[str], *, train_layers: Sequence[str] = (), freeze: int = 0) -> list[str]:
    """The layers kept as the parent's: all but ``train_layers`` when that is given, else the
    first ``freeze`` of ``names`` (layers with weights, in order); none by default."""
    names = list(names)
    if train_layers and freeze:
        raise TransferError("give either train_layers (the layers to train) or freeze (how many to keep), not both")
    if train_layers:
        unknown = [n for n in train_layers if n not in names and n != "all"]
        if unknown:
            raise TransferError(f"train_layers: no layer {unknown} in this network; its layers with weights are "
                                f"{','.join(names)}")
        if "all" in train_layers:
            return []
        return [n for n in names if n not in train_layers]
    if freeze < 0 or freeze >= len(names):
        raise TransferError(f"freeze={freeze}: this network has {len(names)} layers with weights "
                            f"({','.join(names)}); keep 0 to {len(names) - 1} of them")
    return names[:freeze]


def start_from(trained: M.TrainedModel, folder: str | os.PathLike, *, train_layers: Sequence[str] = (),
               freeze: int = 0, shared_labels: bool = True) -> dict:
    """Copy the parent's weights into ``trained`` (a freshly built model for the new labels) and
    freeze the layers asked for; records and returns the lineage (``trained.extra["transfer"]``).

    Every layer with weights is copied by name, except ``output`` when the labels (or loss)
    differ: it stays newly initialised for the new label set, except the columns of labels the
    parent also has (``ambient``, say) with the same loss, which get the parent's (kernel and
    bias) when ``shared_labels``. A layer the parent lacks stays new too; a layer whose weights
    have other shapes is refused (train with the parent's network settings). Frozen layers must
    be copied ones.

    Raises:
        TransferError: another rate or channel count that does not carry over, other shapes,
            unknown or new layers to freeze.
    """
    folder = Path(folder)
    check_rate(folder, rate=trained.rate, nchannels=trained.nchannels)
    parent = M.load_trained_model(folder)
    same_outputs = parent.labels == trained.labels and parent.loss == trained.loss
    by_name = {layer.name: layer for layer in parent.keras_model.layers if layer.weights}
    copied, new, shared = [], [], []
    for layer in trained.keras_model.layers:
        if not layer.weights:
            continue
        source = by_name.get(layer.name)
        if source is None or (layer.name == OUTPUT_LAYER and not same_outputs):
            new.append(layer.name)
            if source is not None and shared_labels and parent.loss == trained.loss:
                shared = _copy_shared_outputs(source, layer, parent.labels, trained.labels)
            continue
        theirs, ours = source.get_weights(), layer.get_weights()
        shapes = [tuple(w.shape) for w in theirs], [tuple(w.shape) for w in ours]
        if shapes[0] != shapes[1]:
            raise TransferError(f"{folder}: layer {layer.name} has weights of shapes {shapes[0]} there, {shapes[1]} "
                                f"in the network being trained; train with the parent's network settings "
                                f"(songexplorer train --start-from takes them from the parent)")
        layer.set_weights(theirs)
        copied.append(layer.name)
    names = weighted_layer_names(trained.keras_model)
    frozen = frozen_layers(names, train_layers=train_layers, freeze=freeze)
    not_copied = [n for n in frozen if n not in copied]
    if not_copied:
        raise TransferError(f"cannot keep {not_copied} fixed: they are new (not in {folder}), so they must be "
                            f"trained; the copied layers are {','.join(copied)}")
    for layer in trained.keras_model.layers:
        if layer.name in frozen:
            layer.trainable = False
    lineage = {**read_lineage(folder), "parent_folder": str(folder.resolve()), "parent_labels": parent.labels,
               "parent_rate": parent.rate, "copied": copied, "new": new, "shared_labels": shared, "frozen": frozen,
               "trained": [n for n in names if n not in frozen]}
    lineage.setdefault("source", str(folder))
    trained.extra = {**trained.extra, "transfer": lineage}
    return lineage


def _copy_shared_outputs(source, layer, parent_labels: Sequence[str], labels: Sequence[str]) -> list[str]:
    """Give ``layer`` (a new output layer) the parent's kernel column and bias of every label both
    have, when the layers differ only in their number of labels (the last axis); the labels copied."""
    theirs, ours = source.get_weights(), layer.get_weights()
    if len(theirs) != len(ours) or any(a.shape[:-1] != b.shape[:-1] for a, b in zip(theirs, ours)):
        return []
    shared = [label for label in labels if label in parent_labels]
    for label in shared:
        i, j = parent_labels.index(label), list(labels).index(label)
        for mine, parents in zip(ours, theirs):
            mine[..., j] = parents[..., i]
    if shared:
        layer.set_weights(ours)
    return shared


def describe(lineage: Mapping) -> str:
    """One line for logs: where the model started and which layers it trains."""
    where = lineage.get("model_uri") or lineage.get("parent_folder") or lineage.get("source")
    version = f" (version {lineage['model_version']}, run {lineage['mlflow_run_id']})" \
        if lineage.get("model_version") else ""
    return (f"started from {where}{version} with labels {','.join(lineage.get('parent_labels', []))}: copied "
            f"{','.join(lineage.get('copied', [])) or 'nothing'}; new {','.join(lineage.get('new', [])) or 'none'}"
            + (f" (with the parent's outputs of {','.join(lineage['shared_labels'])})"
               if lineage.get("shared_labels") else "") + "; "
            f"frozen {','.join(lineage.get('frozen', [])) or 'none'}")


#: MLflow run tags naming a training's parent model (:func:`mlflow_tags`).
PARENT_TAGS = {"source": "songexplorer.parent.source", "model_uri": "songexplorer.parent.uri",
               "model_version": "songexplorer.parent.version", "mlflow_run_id": "songexplorer.parent.run_id",
               "registered_model": "songexplorer.parent.registered_model",
               "parent_folder": "songexplorer.parent.folder", "frozen": "songexplorer.frozen_layers",
               "trained": "songexplorer.trained_layers"}


def mlflow_tags(lineage: Mapping) -> dict[str, str]:
    """The lineage as MLflow run tags (``songexplorer.parent.run_id``, ``.version``, ``.uri``, ...)."""
    tags = {}
    for key, tag in PARENT_TAGS.items():
        value = lineage.get(key)
        if value is None:
            continue
        tags[tag] = ",".join(value) if isinstance(value, list) else str(value)
    return tags
