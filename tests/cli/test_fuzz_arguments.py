"""Property-based fuzzing (hypothesis) of the command line's argument handling: for every
command, argument lists built from its own flags with odd values (paths of every kind, numbers
out of range, labels that are paths, control characters) either parse or stop with argparse's
usage error; the commands that only read files then either run or stop with a message and a
non-zero status, and never modify their inputs.

Bounded for CI by ``SONGEXPLORER_FUZZ_EXAMPLES`` (default 60 examples per test, well under a
minute in all); raise it for a longer hunt.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from songexplorer_cli import build_parser, main  # noqa: E402
from songexplorer_core.labels import label_problem  # noqa: E402

EXAMPLES = int(os.environ.get("SONGEXPLORER_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
#: Commands that read files and write results without TensorFlow, a server or a new project.
RUNNABLE = ("detect", "misses", "summaries", "ethogram", "congruence", "accuracy")
ODD = ["0", "-1", "1,1", "a,b", "1e309", "nan", "inf", "-inf", "1-2", "../x", "x/y", "a\nb", "", " ", "\x00", "é",
       "--", "-h"]
#: Flags whose value is a list of labels (labels are names, never paths).
LABEL_FLAGS = {"--labels", "--detected-labels", "--pulse-labels", "--overlapped-prefix"}

PARSER = build_parser()
SUBPARSERS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Inputs of every kind in a folder of their own: a recording, interval CSVs good and bad, a
    thresholds file, a text file named .wav, a folder, and names that do not exist."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "dir").mkdir()
    soundfile.write(str(root / "rec.wav"), np.zeros(5000, np.int16), 2500, subtype="PCM_16")
    (root / "rec.wav-detected.csv").write_text("rec.wav,1,2,detected,time\n")
    (root / "rec.wav-predicted-1.0pr.csv").write_text("rec.wav,1,2,predicted,pulse\n")
    (root / "bad.csv").write_text("garbage,,\n")
    (root / "thresholds.ckpt-1.csv").write_text("precision/recall,1.0\npulse,0.5\n")
    (root / "notes.wav").write_text("hello")
    names = ["dir", "rec.wav", "rec.wav-detected.csv", "rec.wav-predicted-1.0pr.csv", "bad.csv",
             "thresholds.ckpt-1.csv", "notes.wav", "missing", "dir/new"]
    return root, [str(root / name) for name in names]


def argv_strategy(name: str, paths: list[str]) -> st.SearchStrategy[list[str]]:
    """Argument lists for command ``name``: its positionals and required flags, some of its
    other flags, each value a path, a number or an odd string."""
    parser = SUBPARSERS[name]
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    positionals = [a for a in parser._actions if not a.option_strings]
    value = st.one_of(st.sampled_from(paths), st.integers(-10**6, 10**6).map(str), st.sampled_from(ODD),
                      st.text(max_size=10), st.floats(allow_nan=True).map(str))

    @st.composite
    def build(draw):
        argv = [name]
        for action in positionals:
            argv += [draw(value) for _ in range(1 if action.nargs is None else draw(st.integers(1, 2)))]
        chosen = draw(st.lists(st.sampled_from(options), max_size=6)) if options else []
        chosen += [a for a in options if a.required and a not in chosen]
        for action in chosen:
            argv.append(action.option_strings[-1])
            if action.nargs != 0:
                argv.append(draw(value))
        return argv

    return build()


@pytest.mark.parametrize("name", sorted(SUBPARSERS))  # every command (a module may register several)
def test_every_command_parses_or_stops_with_a_usage_error(name, files):
    root, paths = files

    @FUZZ
    @given(argv=argv_strategy(name, paths + ["/", "-"]))
    def check(argv):
        with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
            try:
                args = PARSER.parse_args(argv)
            except SystemExit as stop:
                assert stop.code in (0, 2) and (stop.code == 0 or "error:" in err.getvalue())
                return
        for flag in LABEL_FLAGS:
            value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
            if isinstance(value, str) and value:
                labels = [value] if flag == "--overlapped-prefix" else value.split(",")
                assert all(label_problem(label) is None for label in labels), (flag, value)

    check()


@pytest.mark.parametrize("name", RUNNABLE)
def test_commands_that_read_files_run_or_stop_with_a_message(name, files, monkeypatch):
    root, paths = files
    monkeypatch.chdir(root / "dir")
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}

    @FUZZ
    @given(argv=argv_strategy(name, paths))
    def check(argv):
        with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
            try:
                status = main(argv)
            except SystemExit as stop:
                status = stop.code
            except OSError:
                # an output path that is a file, an unreadable folder: the entry point's handling
                # of operating-system errors (docs/reliability.md, Writers and errors)
                return
        assert status in (0, 1, 2), (argv, status)  # 1: some recordings failed, each named
        if status:
            assert "error" in err.getvalue() and "Traceback" not in err.getvalue()

    check()
    # the inputs are never modified (outputs only appear as new files)
    assert {p: p.stat().st_mtime_ns for p in before} == before


@FUZZ
@given(labels=st.lists(st.one_of(st.sampled_from(ODD + ["mel-pulse", "ambient", "not_"]), st.text(max_size=8)),
                       min_size=1, max_size=4))
def test_label_flags_take_names_and_refuse_paths_naming_the_flag(labels):
    text = ",".join(labels)
    items = [x.strip() for x in text.split(",") if x.strip()] if text != "--" else []  # argparse's "--"
    argv = ["train", "--groundtruth", "g", "--out", "o", f"--labels={text}"]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            args = PARSER.parse_args(argv)
        except SystemExit as stop:
            assert stop.code == 2 and "argument --labels:" in err.getvalue() and "a label is a name" in err.getvalue()
            assert any(label_problem(x) is not None for x in items)
            return
    assert args.labels.split(",") == items or (args.labels == "" and not items)
    assert all(label_problem(x) is None for x in items)


def test_a_label_that_is_a_path_stops_every_command_before_it_starts(capsys):
    cases = [["train", "--groundtruth", "g", "--out", "o", "--labels", "pulse,../../groundtruth/X"],
             ["classify", "x.wav", "--model", "m", "--out-dir", "o", "--labels", "a/b"],
             ["congruence", "--labels", "a\nb"], ["misses", "x.csv", "--detected-labels", "time,.."],
             ["mistakes", "acts.npz", "--labels", "a\\b"], ["summaries", "x.csv", "--out-dir", "o", "--pulse-labels", "p,/x"],
             ["annotate", "--labels", "a,b/c"], ["activations", "--labels", "../x"],
             ["train", "--groundtruth", "g", "--out", "o", "--labels", "a", "--overlapped-prefix", "no/"]]
    for argv in cases:
        with pytest.raises(SystemExit) as stop:
            PARSER.parse_args(argv)
        assert stop.value.code == 2
        assert "a label is a name" in capsys.readouterr().err, argv
