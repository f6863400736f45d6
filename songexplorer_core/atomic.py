"""Atomic file writes: write a temporary file beside the target, then rename it into place.

A reader (the Dagster sensor, the annotator, another person's session) therefore never sees a
half-written file, and a crash mid-write leaves the previous version intact. Writers that
read-modify-write a shared folder (annotation sessions saving) hold :func:`folder_lock` meanwhile.
Jobs that write a set of outputs (training, classification) hold :func:`output_lock`: one writer
per output folder, a second one is refused with a message naming the first; what a killed
writer left half-done is removed by :func:`remove_stale_temporaries`.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Iterator

try:  # POSIX: an advisory lock on the folder serialises writers across processes and threads.
    import fcntl
except ImportError:  # pragma: no cover - Windows: one process at a time is all we can promise
    fcntl = None

TEMP_SUFFIX = ".tmp"
#: Permissions asked for when a file is created; the process's umask takes bits away, as for
#: any file a program creates (``0o666 & ~umask``: 0644 under umask 022, 0664 under 002).
SHARED_MODE = 0o666


def _create_temporary(path: Path, suffix: str) -> tuple[str, os.stat_result]:
    """Create an empty, new temporary file beside ``path`` with the permissions the umask gives
    new files (``tempfile.mkstemp`` makes them 0600, so colleagues and a service account could
    not read a saved annotation). Returns its name and its ``stat`` (mode and inode)."""
    for _ in range(100):
        name = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(6)}{suffix}")
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), SHARED_MODE)
        except FileExistsError:
            continue
        try:
            created = os.fstat(fd)
        finally:
            os.close(fd)
        return name, created
    raise FileExistsError(f"{path.parent}: could not create a temporary file for {path.name}")


def _keep_umask_mode(name: str, created: os.stat_result) -> None:
    """A library that writes by file name may replace the temporary file with one of its own
    permissions: give the finished file the umask's, those it was created with."""
    if stat.S_IMODE(os.stat(name).st_mode) != stat.S_IMODE(created.st_mode):
        os.chmod(name, stat.S_IMODE(created.st_mode))


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    The temporary name ends in ``.tmp`` so folder scanners can ignore it. The file gets the
    permissions the umask gives new files (:data:`SHARED_MODE` less the umask's bits), unless
    the caller changes them on the handle (``os.fchmod``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name, _ = _create_temporary(path, TEMP_SUFFIX)
    try:
        with open(tmp_name, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        _name_the_target(error, path, tmp_name)
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
    tmp_name, created = _create_temporary(path, f"{TEMP_SUFFIX}{path.suffix}")
    try:
        yield Path(tmp_name)
        _keep_umask_mode(tmp_name, created)
        os.replace(tmp_name, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        _name_the_target(error, path, tmp_name)
        raise


def _name_the_target(error: BaseException, path: Path, tmp_name: str) -> None:
    """An ``OSError`` met while writing the temporary file (a full disk, a read-only folder)
    names the file being written, not the temporary one nor nothing: errors' messages then say
    which output failed (``songexplorer_core.errors.explain``)."""
    if isinstance(error, OSError) and type(error).__str__ is OSError.__str__ and \
            error.filename in (None, tmp_name, str(tmp_name)):
        error.filename = str(path)


def is_temporary(path: str | os.PathLike) -> bool:
    """True for the in-progress files written by :func:`atomic_write` / :func:`atomic_path`."""
    name = os.path.basename(os.fspath(path))  # not Path(): called once per file of large folders
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


# ---------------------------------------------------------------------------------------------
# one writer per output folder

#: The lock file :func:`output_lock` creates in a folder being written (removed when done).
LOCK_FILE = ".songexplorer-writer.lock"

logger = logging.getLogger(__name__)


class BusyError(OSError):
    """Another process is writing the same outputs; the message names it (pid, host, start time)."""

    def __init__(self, message: str, path: str | os.PathLike):
        super().__init__(errno.EBUSY, message, str(path))
        self.message = message

    def __str__(self) -> str:
        return self.message


def _describe_holder(info: dict) -> str:
    command = f" ({info['command']})" if info.get("command") else ""
    return (f"process {info.get('pid', '?')} on host {info.get('host', '?')}{command}, "
            f"started {info.get('started', '?')}")


def _read_lock(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 65536).decode("utf-8", errors="replace").strip()
    if not text:
        return {}
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        return {"pid": "?", "host": "?", "started": "?", "command": f"unreadable lock: {text[:60]!r}"}
    return info if isinstance(info, dict) else {}


def _process_exists(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError, OverflowError):
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, *, what: str, name: str = LOCK_FILE) -> Iterator[Path]:
    """Be the only writer of ``folder`` (or of the outputs a lock ``name`` stands for) meanwhile.

    Creates ``folder/name`` holding this process's pid, host, command and start time, locked
    with ``flock`` while the block runs, and removes it afterwards. A second writer, in this
    process or another, gets :class:`BusyError` naming the first. A lock file left by a process
    that died on this host (``kill -9``, a power cut) is taken over with a warning; one left by
    a process on another host is refused unless that host's process is known to be gone (the
    message says which file to delete). ``what`` names the job in the lock (``train``,
    ``classify``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    host = socket.gethostname()
    for _ in range(10):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            locked = True
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise BusyError(f"{folder}: {_describe_holder(_read_lock(fd))} is writing {what} outputs here "
                                    f"(lock file {path}); wait for it to finish or use another folder", path) from None
                except OSError:  # a file system without flock: fall back on the pid
                    locked = False
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed it between our open and our lock: try again
                os.close(fd)
                continue
            previous = _read_lock(fd)
            if previous:
                if previous.get("host") != host:
                    raise BusyError(
                        f"{folder}: the lock file {path} says {_describe_holder(previous)} writes {what} outputs here; "
                        f"it runs on another host, so this one cannot tell whether it is still running. If it is "
                        f"not, delete {path} and run again", path)
                if not locked and _process_exists(previous.get("pid")) and previous.get("pid") != os.getpid():
                    raise BusyError(f"{folder}: {_describe_holder(previous)} is writing {what} outputs here "
                                    f"(lock file {path}); wait for it to finish or use another folder", path)
                logger.warning(f"{folder}: taking over the lock {path} left by {_describe_holder(previous)}, which "
                               f"is no longer running; its unfinished files are cleaned up")
            info = {"pid": os.getpid(), "host": host, "what": what, "command": " ".join(sys.argv)[:200],
                    "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(info).encode())
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.close(fd)
        return
    raise BusyError(f"{folder}: the lock file {path} keeps changing hands; another writer is busy here", path)


def remove_stale_temporaries(folder: str | os.PathLike, names: Iterable[str] | None = None) -> list[Path]:
    """Remove what writers killed mid-write left in ``folder``: temporary files and folders of
    :func:`atomic_write`, :func:`atomic_path` and ``models.write_into_new_folder``; with
    ``names``, only those of these outputs' names. Call it holding :func:`output_lock` (so no
    writer is using them). Returns what was removed."""
    folder = Path(folder)
    wanted = None if names is None else set(names)
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        target = temporary_target(path.name)
        if target is None or (wanted is not None and target not in wanted):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        removed.append(path)
    return removed


_TEMPORARY = re.compile(r"^\.(?P<target>.+?)\.(?:old\.)?[A-Za-z0-9_]{6,}(?:\.tmp(?:\.[^.]*)?)?$")


def temporary_target(name: str) -> str | None:
    """The output a temporary name stands for (``.x.wav.ab12cd34.tmp.wav`` -> ``x.wav``), or None."""
    if not is_temporary(name) and ".old." not in name:
        return None
    match = _TEMPORARY.match(name)
    return match.group("target") if match else None
