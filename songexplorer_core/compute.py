"""Where TensorFlow computes: CPU or GPU, how many threads, and GPU memory growth.

Call :func:`configure_compute` once, at the start of a process that trains or classifies (the
``songexplorer`` CLI and the Dagster assets do), *before* anything runs on TensorFlow: thread
counts and visible devices can only be set before TensorFlow initialises its runtime, and the
oneDNN switch only before TensorFlow is imported.

Measured on the project's 2-core CPU machines: TensorFlow's oneDNN kernels make the tutorial
network's training steps ~1.5x *slower* than TensorFlow's own kernels for these small
convolutions (benchmarks/train.py), and classification too: 891x realtime by CPU time with
oneDNN against 1139-1239x without, 219x against ~570x for the Keras model as built
(benchmarks/classify.py --onednn). So :func:`configure_compute` turns oneDNN off on CPU unless
asked otherwise, for training and inference alike. (TensorFlow 2.21 leaves it off by default on
these AVX2 AMD CPUs anyway, but turns it on by default on CPUs with AVX-512 VNNI/BF16 or AMX.)
Results are the same to float rounding either way.

Quiet on CPU-only machines: loading TensorFlow and listing GPUs prints native messages on stderr
(``cudart_stub.cc: Could not find cuda drivers``, ``failed call to cuInit``, absl's note, the CPU
feature guard) in every process that imports it, which read like errors where there is simply no
GPU. :func:`configure_compute` catches stderr while it loads TensorFlow and lists the devices; with
no GPU found it drops exactly those lines and logs one line saying the CPU is used; with a GPU,
or for any other line, everything is written back to stderr as it was.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "gpu")

#: TensorFlow's native stderr lines on a machine without a usable GPU (and the CPU feature note):
#: dropped when no GPU is found (:func:`configure_compute`).
CPU_ONLY_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|cudart_stub\.cc.*Could not find cuda drivers"
    r"|failed call to cuInit"
    r"|cpu_feature_guard\.cc"
    r"|^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
)


@contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Everything written to file descriptor 2 (native libraries and Python alike) inside the
    block, as lines in the yielded list once the block ends; stderr is restored whatever happens."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            lines.extend(caught.read().decode("utf-8", errors="replace").splitlines())


def _write_back(lines: list[str], *, drop_cpu_noise: bool) -> None:
    kept = [line for line in lines if not (drop_cpu_noise and CPU_ONLY_NOISE.search(line))]
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")
        sys.stderr.flush()


@dataclass(frozen=True)
class ComputeInfo:
    """What :func:`configure_compute` set up.

    Attributes:
        device: ``cpu`` or ``gpu`` (what TensorFlow will use).
        gpus: names of the visible GPUs.
        intra_op_threads, inter_op_threads: TensorFlow's thread pools (0 = TensorFlow decides).
        onednn: whether oneDNN kernels are on (``None``: TensorFlow was imported before, unknown).
        notes: settings that could not be applied, and why.
    """

    device: str
    gpus: tuple[str, ...]
    intra_op_threads: int
    inter_op_threads: int
    onednn: bool | None
    notes: tuple[str, ...] = ()


def configure_compute(device: str = "auto", threads: int | None = None, *, onednn: bool | None = None
                      ) -> ComputeInfo:
    """Choose CPU or GPU and the number of threads for TensorFlow.

    Args:
        device: ``"auto"`` (a GPU if one is visible, else the CPU), ``"cpu"`` (hide GPUs), or
            ``"gpu"`` (require one; :class:`RuntimeError` if there is none).
        threads: TensorFlow intra-op threads (inter-op threads are set to 1 when given, which
            suits these sequential networks); ``None`` leaves TensorFlow's default (all cores).
        onednn: use oneDNN CPU kernels; ``None`` = off (faster for these networks, see the module
            docstring). Only takes effect if TensorFlow is not imported yet.

    GPUs get memory growth, so several processes can share one GPU. Settings TensorFlow no
    longer accepts (it was already initialised) are skipped with a warning and listed in
    :attr:`ComputeInfo.notes`.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {device!r}")
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads must be a positive number, not {threads!r}")
    notes = []
    if "tensorflow" in sys.modules:
        onednn_state = None
        if onednn is not None:
            notes.append("oneDNN setting ignored: TensorFlow was already imported")
    else:
        want = bool(onednn) if onednn is not None else False
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if want else "0"
        onednn_state = want
    with captured_stderr() as loading:
        import tensorflow as tf  # noqa: PLC0415 (lazy by design)

        gpus = tf.config.list_physical_devices("GPU")
    _write_back(loading, drop_cpu_noise=not gpus)
    if device == "gpu" and not gpus:
        raise RuntimeError("device='gpu' was asked for but TensorFlow sees no GPU; install tensorflow[and-cuda] "
                           "and check the NVIDIA driver (nvidia-smi), or use device='cpu'")
    use_gpu = bool(gpus) and device != "cpu"
    try:
        if not use_gpu and gpus:
            tf.config.set_visible_devices([], "GPU")
        for gpu in gpus if use_gpu else ():
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as error:  # already initialised
        notes.append(f"device settings ignored ({error})")
    intra = inter = 0
    if threads is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError as error:
            notes.append(f"thread settings ignored ({error})")
    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    for note in notes:
        warnings.warn(f"configure_compute: {note}; call it before using TensorFlow", stacklevel=2)
    info = ComputeInfo(device="gpu" if use_gpu else "cpu", gpus=tuple(g.name for g in gpus) if use_gpu else (),
                       intra_op_threads=int(intra), inter_op_threads=int(inter), onednn=onednn_state,
                       notes=tuple(notes))
    logger.info("compute: %s", info)
    if not gpus:
        logger.info("compute: CPU (no GPU found; TensorFlow's CUDA messages hidden)")
    return info
