"""Atomic file writes: write a temporary file beside the target, then rename it into place.

A reader (the Dagster sensor, the annotator, another person's session) therefore never sees a
half-written file, and a crash mid-write leaves the previous version intact. Writers that
read-modify-write a shared folder (annotation sessions saving) hold :func:`folder_lock` meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path
from typing import IO, Iterator

try:  # POSIX: an advisory lock on the folder serialises writers across processes and threads.
    import fcntl
except ImportError:  # pragma: no cover - Windows: one process at a time is all we can promise
    fcntl = None

TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    The temporary name ends in ``.tmp`` so folder scanners can ignore it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        with open(tmp_name, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for libraries that write by file name
    (soundfile, pyarrow, numpy); rename it onto ``path`` when the block succeeds.

    The temporary path keeps ``path``'s suffix (before ``.tmp`` is appended by nothing), so
    libraries that pick a format from the extension still work: ``x.wav`` -> ``.x.wav.<rand>.wav``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f"{TEMP_SUFFIX}{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def is_temporary(path: str | os.PathLike) -> bool:
    """True for the in-progress files written by :func:`atomic_write` / :func:`atomic_path`."""
    name = Path(path).name
    return name.startswith(".") and (TEMP_SUFFIX in name)


_THREAD_LOCKS: dict[Path, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while annotation files in it are read and rewritten.

    An advisory ``flock`` on the folder itself (no lock file is created), which serialises saves
    from other processes and other threads alike; where ``fcntl`` is missing, a per-process lock.
    """
    folder = Path(folder)
    if fcntl is None:  # pragma: no cover
        with _THREAD_LOCKS_GUARD:
            lock = _THREAD_LOCKS.setdefault(folder.resolve(), threading.Lock())
        with lock:
            yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
