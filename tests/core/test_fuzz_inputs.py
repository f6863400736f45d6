"""Property-based fuzzing (hypothesis) of what enters from outside: interval CSVs, WAV files and
labels. Whatever the bytes, the readers either give a well-formed result or raise their own error
naming the file; nothing else escapes, and nothing is written outside its folder.

Bounded for CI: each test runs ``SONGEXPLORER_FUZZ_EXAMPLES`` examples (default 60; the whole
file takes well under a minute on two cores). Raise it for a longer hunt, e.g.
``SONGEXPLORER_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/core/test_fuzz_inputs.py``.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from songexplorer_core import annotations as A  # noqa: E402
from songexplorer_core.audio import RecordingError, check_recording, read_recording, recording_info  # noqa: E402
from songexplorer_core.classify import probability_wav_name  # noqa: E402
from songexplorer_core.labels import LabelError, UnsafePathError, check_label, child_path, label_problem, parse_labels  # noqa: E402
from songexplorer_core.models.folders import read_labels_txt, write_labels_txt  # noqa: E402

EXAMPLES = int(os.environ.get("SONGEXPLORER_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Characters a hostile or careless file holds: separators, quotes, dots, controls, BOMs, bidi.
NASTY = st.sampled_from(list(",\"'./\\\n\r\t\x00 ;-_0123456789") + ["..", "\ufeff", "\u202e", "\u2028", "é", "歌",
                                                                   "annotated", "detected", "a.wav", "-1", "1e3"])
TEXT = st.lists(st.one_of(NASTY, st.text(max_size=4)), max_size=30).map("".join)


def csv_like_lines() -> st.SearchStrategy[str]:
    """Text shaped like an interval CSV with damage: right and wrong column counts, odd cells."""
    cell = st.one_of(TEXT, st.integers(-2**70, 2**70).map(str), st.sampled_from(["a.wav", "annotated", "pulse", ""]))
    row = st.lists(cell, min_size=0, max_size=7).map(",".join)
    newline = st.sampled_from(["\n", "\r\n", "\r"])
    return st.tuples(st.lists(row, max_size=12), newline, st.booleans()).map(
        lambda t: ("\ufeff" if t[2] else "") + t[1].join(t[0]))


def check_frame(frame: pd.DataFrame) -> None:
    """What every interval table read from a file holds."""
    assert list(frame.columns[:5]) == list(A.COLUMNS)
    assert str(frame["start"].dtype) == "int64" and str(frame["stop"].dtype) == "int64"
    assert (frame["stop"] >= frame["start"]).all()
    for label in frame["label"]:
        assert label_problem(label) is None, label
    for wav in frame["wav"]:
        assert A.wav_name_problem(wav) is None and "/" not in wav and "\\" not in wav
    assert not frame.duplicated().any()


@FUZZ
@given(data=st.one_of(csv_like_lines().map(lambda s: s.encode("utf-8", "surrogatepass")), st.binary(max_size=300)),
       tics=st.none() | st.integers(0, 10**7))
def test_the_csv_reader_loads_a_valid_table_or_names_the_file(data, tics):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.wav-annotated-p.csv"
        path.write_bytes(data)
        recording_tics = None if tics is None else {"a.wav": tics}
        try:
            frame = A.read_intervals_csv(path, recording_tics=recording_tics, notes=[])
        except A.AnnotationError as error:
            assert str(path) in str(error)
            return
        check_frame(frame)
        if tics is not None:
            assert (frame["wav"] == "a.wav").all()
            assert (frame["stop"] < tics + (frame["kind"] == "detected")).all()


VALID_LABEL = st.text(min_size=1, max_size=30).filter(lambda x: label_problem(x) is None)
VALID_WAV = st.text(min_size=1, max_size=20).map(lambda x: x.strip() + ".wav").filter(
    lambda x: A.wav_name_problem(x) is None and "\ufeff" not in x and x == x.strip())
KIND = st.sampled_from(sorted(A.KNOWN_KINDS))


@FUZZ
@given(rows=st.lists(st.tuples(VALID_WAV, st.integers(0, 2**40), st.integers(0, 2**20), KIND, VALID_LABEL),
                     max_size=15, unique=True))
def test_any_valid_table_survives_writing_and_reading_back(rows):
    frame = A.intervals_frame([r[0] for r in rows], [r[1] for r in rows], [r[1] + r[2] for r in rows],
                              [r[3] for r in rows], [r[4] for r in rows]) if rows else A.empty_intervals()
    with tempfile.TemporaryDirectory() as folder:
        path = A.write_intervals_csv(frame, Path(folder) / "x.wav-annotated-p.csv")
        back = A.read_intervals_csv(path)
    pd.testing.assert_frame_equal(back, frame)


@FUZZ
@given(label=TEXT | st.text(max_size=40))
def test_a_label_is_a_name_or_refused_and_a_name_stays_in_its_folder(label):
    problem = label_problem(label)
    if problem is not None:
        with pytest.raises(LabelError):
            check_label(label, where="fuzz")
        return
    with tempfile.TemporaryDirectory() as folder:
        path = child_path(folder, probability_wav_name("rec.wav", label))
        assert path.parent == Path(folder) and path.resolve().parent == Path(folder).resolve()
        write_labels_txt([label, "other"], Path(folder) / "labels.txt")
        assert read_labels_txt(Path(folder) / "labels.txt") == [label, "other"]
    assert parse_labels(f"{label},other") == (label, "other")


@FUZZ
@given(name=TEXT)
def test_no_file_name_leaves_its_folder(name):
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = child_path(folder, name)
        except UnsafePathError:
            return
        assert path.resolve().parent == Path(folder).resolve()


def _wav_bytes(samples: np.ndarray, subtype: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 2500, subtype=subtype, format="WAV")
    return buffer.getvalue()


@FUZZ
@given(subtype=st.sampled_from(["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "PCM_U8"]),
       samples=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=64),
       damage=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=4),
       cut=st.none() | st.integers(0, 400))
def test_a_wav_is_read_at_its_scale_or_refused_naming_the_file(subtype, samples, damage, cut):
    samples = np.asarray(samples, dtype=np.float64)
    data = bytearray(_wav_bytes(samples, subtype))
    for offset, value in damage:  # damage the header
        if offset < len(data):
            data[offset] = value
    if cut is not None:
        data = data[:cut]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.wav"
        path.write_bytes(bytes(data))
        try:
            check_recording(path)
            _, counts = read_recording(path)
            _, floats = read_recording(path, dtype="float32")
        except RecordingError as error:
            assert str(path) in str(error)
            return
        assert counts.dtype == np.int16 and floats.dtype == np.float32
        assert np.isfinite(floats).all()
        if not damage and cut is None:
            assert len(counts) == len(samples)
            if subtype in ("FLOAT", "DOUBLE"):
                assert np.isfinite(samples).all()  # NaN and infinity are refused
                np.testing.assert_allclose(floats[:, 0], samples.astype(np.float32), rtol=1e-6)


@FUZZ
@given(data=st.binary(max_size=200), header=st.booleans())
def test_any_bytes_named_wav_are_a_recording_or_refused(data, header):
    if header:  # a RIFF/WAVE header with chunk sizes of any value in front of the junk
        data = b"RIFF" + struct.pack("<I", len(data) + 4) + b"WAVE" + data
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "junk.wav"
        path.write_bytes(data)
        try:
            info = recording_info(path)
            read_recording(path, 0, 100)
        except RecordingError as error:
            assert str(path) in str(error)
            return
        assert info.frames >= 0
