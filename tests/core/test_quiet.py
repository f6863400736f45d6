"""Quiet on success: repeated warnings come out once with a count; TensorFlow's CUDA probing on a
machine without a GPU is dropped, every other stderr line kept."""

import os
import warnings

import pytest

from songexplorer_core.compute import CPU_ONLY_NOISE, _write_back, captured_stderr
from songexplorer_core.warnings_summary import collapsed_warnings, warning_kind


def test_thirty_alike_warnings_come_out_as_one_with_a_count():
    with pytest.warns(UserWarning) as record:
        with collapsed_warnings("checkpoints and labels"):
            for checkpoint in range(10):
                for label in ("ambient", "mel-pulse", "mel-sine"):
                    warnings.warn(f"/tmp/run/validation.ckpt-{checkpoint * 20}.npz: label {label!r}: "
                                  f"precision/recall never reaches 1.0 on the validation taps "
                                  f"(at most {0.5 + checkpoint / 100:.3g})", UserWarning)
            warnings.warn("something else entirely", UserWarning)
    messages = [str(w.message) for w in record]
    assert len(messages) == 4  # one per label, and the other one
    assert messages[0].startswith("/tmp/run/validation.ckpt-0.npz: label 'ambient': precision/recall never reaches")
    assert messages[0].endswith("(and 9 more like it: 10 checkpoints and labels in all)")
    assert messages[3] == "something else entirely"
    assert warning_kind("a/b.npz: at most 0.53") == warning_kind("c/d.npz: at most 0.6")


def test_tensorflows_cpu_only_messages_are_dropped_and_the_rest_kept(capfd):
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796302504.768259   26887 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
        "GPU will not be used.",
        "E0000 00:00:1796302523.477653   26887 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
        "Failed call to cuInit: UNKNOWN ERROR (303)",
    ]
    assert all(CPU_ONLY_NOISE.search(line) for line in noise)
    with captured_stderr() as lines:
        os.write(2, ("\n".join(noise) + "\nsomething real went wrong\nanother line\n").encode())
    assert lines[-2:] == ["something real went wrong", "another line"]
    capfd.readouterr()
    _write_back(lines, drop_cpu_noise=True)
    assert capfd.readouterr().err == "something real went wrong\nanother line\n"
    _write_back(lines, drop_cpu_noise=False)  # a GPU was found: every line as it was
    assert capfd.readouterr().err.count("\n") == len(noise) + 2
