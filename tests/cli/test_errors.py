"""The command line turns every expected failure into one line and a non-zero status (issue 11,
items 6 and 8): operating-system errors worded with the file, numbers out of range refused where
they are parsed, a port in use, a bug as one line unless SONGEXPLORER_DEBUG=1."""

from __future__ import annotations

import errno
import socket

import pytest

from songexplorer_cli import main
from songexplorer_core.annotations import intervals_frame, write_intervals_csv


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_a_bug_is_one_line_with_the_debug_hint_and_a_traceback_on_request(monkeypatch, capsys, tmp_path):
    import songexplorer_cli.init as init

    def broken(args):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(init, "run", broken)
    assert main(["init", str(tmp_path / "p")]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line == ("songexplorer init: unexpected error: RuntimeError: something nobody expected "
                    "(run with SONGEXPLORER_DEBUG=1 for the traceback)")
    monkeypatch.setenv("SONGEXPLORER_DEBUG", "1")
    assert main(["init", str(tmp_path / "p")]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


@pytest.mark.parametrize("error, words", [
    (OSError(errno.ENOSPC, "No space left on device"), "no space left on the disk while writing ("),
    (PermissionError(errno.EACCES, "Permission denied", "/x/y.csv"), "/x/y.csv: permission denied"),
    (OSError(errno.EROFS, "Read-only file system", "/x/y.csv"), "/x/y.csv: the folder is on a read-only"),
    (KeyError("label 'q' is not one of the labels ['a']"), "error: label 'q' is not one of the labels ['a']"),
])
def test_operating_system_errors_are_one_line_naming_the_file(monkeypatch, capsys, tmp_path, error, words):
    import songexplorer_cli.init as init

    def failing(args):
        raise error

    monkeypatch.setattr(init, "run", failing)
    assert main(["init", str(tmp_path / "p")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("songexplorer init: error: ") and words in line and "[Errno" not in line


@pytest.mark.parametrize("argv, words", [
    (["train", "--groundtruth", "g", "--out", "o", "--labels", "a", "--nsteps", "-5"],
     "argument --nsteps: -5 is not a whole number >= 0"),
    (["train", "--groundtruth", "g", "--out", "o", "--labels", "a", "--learning-rate", "nan"],
     "argument --learning-rate: 'nan' is not a number > 0"),
    (["train", "--groundtruth", "g", "--out", "o", "--labels", "a", "--testing-percentage", "140"],
     "argument --testing-percentage: 140 is not a percentage from 0 to 100"),
    (["ethogram", "r.wav", "--thresholds", "t.csv", "--probabilities-dir", "p", "--event-min-peak", "1.5"],
     "argument --event-min-peak: 1.5 is not a number from 0 to 1"),
    (["classify", "r.wav", "--model", "m", "--out-dir", "o", "--batch-size", "0"],
     "argument --batch-size: 0 is not a whole number >= 1"),
    (["annotate", "--port", "70000"], "argument --port: 70000 is not a TCP port, 0 to 65535"),
    (["cluster", "--pca-fraction", "-0.1"], "argument --pca-fraction: -0.1 is not a number from 0 to 1"),
])
def test_numbers_out_of_range_are_refused_where_they_are_parsed(capsys, argv, words):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert words in capsys.readouterr().err


def test_a_port_in_use_is_one_line(capsys, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["annotate", "--project", str(tmp_path), "--port", str(port)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"port {port} on 127.0.0.1 is already in use" in line and "another program listens" in line


def test_congruence_with_an_unknown_annotator_lists_those_present(capsys, tmp_path):
    rows = intervals_frame(wav="r.wav", start=[1], stop=[5], kind="annotated", label="a")
    write_intervals_csv(rows, tmp_path / "r.wav-annotated-person1.csv")
    write_intervals_csv(rows, tmp_path / "r.wav-annotated-person2.csv")
    assert main(["congruence", str(tmp_path), "--annotators", "person3"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--annotators ['person3']" in line and "['person1', 'person2']" in line
