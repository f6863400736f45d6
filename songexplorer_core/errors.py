"""Expected failures as one line: what the command line prints and what a Dagster step fails with.

Every error this project raises on purpose is a ``ValueError`` subclass whose message names the
file or setting and the fix (``ModelError``, ``TrainError``, ``ClassifyError``, ...), or a
:class:`~songexplorer_core.atomic.BusyError` (another process writes that folder). The operating
system's errors are expected too (a full disk, a read-only folder, an output path that is a
file, a port in use) but Python words them for programmers (``[Errno 28] No space left on
device``, often without the file): :func:`explain` says which file, what is wrong and, for a
full disk, how much space is left. Anything else is a bug, and :func:`is_expected` says so.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

#: Exceptions that are not bugs: their message (through :func:`explain`) is all a person needs.
EXPECTED = (OSError, ValueError, KeyError, EOFError)

#: Name of the environment variable that brings tracebacks back (for reporting bugs).
DEBUG_VARIABLE = "SONGEXPLORER_DEBUG"


def debugging() -> bool:
    """True when ``$SONGEXPLORER_DEBUG`` asks for tracebacks (any value but empty/0/false/no)."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def is_expected(error: BaseException) -> bool:
    """True for failures a person can fix from the message (bad input, settings, files, disk);
    False for bugs. ``TrackingError`` (MLflow unreachable or refusing) counts as expected."""
    if isinstance(error, EXPECTED):
        return True
    return type(error).__name__ == "TrackingError"


def free_space(path: str | os.PathLike) -> str:
    """Free space on the file system holding ``path`` (or its nearest existing parent), e.g. ``12.3 MB``."""
    folder = _existing_parent(Path(path))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown"
    return human_bytes(free)


def human_bytes(count: float) -> str:
    """``1536`` -> ``1.5 kB`` (powers of 1000, as ``df -H``)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"  # pragma: no cover


def _existing_parent(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest of ``path`` and its parents that exists and is not a folder (if any but ``path``)."""
    for candidate in [*reversed(Path(os.path.abspath(path)).parents), Path(os.path.abspath(path))]:
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return None


def explain_os_error(error: OSError) -> str:
    """One line for an operating-system error: the file, what is wrong, what to do."""
    name = error.filename if error.filename is not None else None
    if name is not None:  # a temporary file of an atomic write: name the output it stood for
        from songexplorer_core.atomic import temporary_target

        target = temporary_target(Path(str(name)).name)
        if target is not None:
            name = str(Path(str(name)).parent / target)
    where = f"{name}: " if name is not None else ""
    code = error.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        target = name if name is not None else "."
        kind = "disk quota exceeded" if code == errno.EDQUOT else "no space left on the disk"
        return (f"{where}{kind} while writing ({free_space(target)} free there); free some space or write "
                f"elsewhere, then run again (files written before are complete, the one being written was not kept)")
    if code == errno.EROFS:
        return f"{where}the folder is on a read-only file system; give an output folder you can write to"
    if code in (errno.EACCES, errno.EPERM):
        return f"{where}permission denied; check who owns it (ls -ld) or give a folder you can write to"
    if code in (errno.ENOTDIR, errno.EEXIST) and name is not None:
        blocker = _file_in_the_way(Path(name))
        if blocker is not None:
            return f"{blocker}: is a file, not a folder; give a folder path (or move the file away)"
    if code == errno.EISDIR and name is not None:
        return f"{name}: is a folder, not a file; give the path of a file"
    if code == errno.EADDRINUSE:
        return f"{error.strerror or 'address already in use'}{'' if not name else f' ({name})'}: another " \
               f"program listens on that port; stop it or choose another port"
    if code == errno.ENOENT and name is not None:
        return f"{name}: no such file or folder"
    if str(error).startswith("[Errno") or not str(error):
        reason = error.strerror or type(error).__name__
        return f"{where}{reason}"
    return str(error)


def explain(error: BaseException) -> str:
    """The one line a person reads for ``error``: our messages as they are, OS errors worded
    by :func:`explain_os_error`, ``KeyError`` without its quotes."""
    if isinstance(error, OSError) and type(error).__str__ is OSError.__str__:
        return explain_os_error(error)
    if isinstance(error, KeyError) and len(error.args) == 1:
        return str(error.args[0])
    text = str(error).strip()
    return text.replace("\n", " ") if text else type(error).__name__
