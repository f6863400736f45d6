"""Files are shared as the umask says: what the atomic writers finish has the permissions any
program's new file gets (``0o666 & ~umask``), not tempfile's private 0600, so colleagues and a
Dagster service account can read saved annotations (docs/reliability.md, Inputs)."""

import os
import stat

import numpy as np
import pytest
import soundfile

from songexplorer_core.annotations import intervals_frame, write_intervals_csv
from songexplorer_core.atomic import atomic_path, atomic_write, is_temporary


@pytest.fixture(params=[0o022, 0o002, 0o027, 0o077])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_gives_the_umasks_mode(tmp_path, umask):
    with atomic_write(tmp_path / "a.txt") as handle:
        handle.write("x")
    assert mode(tmp_path / "a.txt") == 0o666 & ~umask


def test_atomic_path_gives_the_umasks_mode_whatever_the_library_does(tmp_path, umask):
    with atomic_path(tmp_path / "r.wav") as temporary:
        soundfile.write(str(temporary), np.zeros(10, np.int16), 2500, subtype="PCM_16")
    assert mode(tmp_path / "r.wav") == 0o666 & ~umask
    with atomic_path(tmp_path / "b.bin") as temporary:
        os.unlink(temporary)  # a library that replaces the file with one of its own
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
    assert mode(tmp_path / "b.bin") == 0o666 & ~umask


def test_a_mode_the_caller_sets_is_kept(tmp_path, umask):
    with atomic_write(tmp_path / "secret.txt") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write("token")
    assert mode(tmp_path / "secret.txt") == 0o600


def test_saved_annotations_are_readable_by_the_group_under_a_lab_umask(tmp_path, umask):
    path = write_intervals_csv(intervals_frame("rec.wav", 1, 2, "annotated", "pulse"), tmp_path / "rec.wav-annotated-p.csv")
    assert mode(path) == 0o666 & ~umask
    if umask == 0o002:
        assert mode(path) & stat.S_IRGRP and mode(path) & stat.S_IWGRP


def test_temporary_files_are_still_hidden_and_removed_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "a.txt") as handle:
            assert is_temporary(handle.name) and os.path.dirname(handle.name) == str(tmp_path)
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
