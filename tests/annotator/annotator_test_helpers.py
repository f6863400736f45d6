"""Starting and stopping ``songexplorer annotate`` for the server and browser tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from songexplorer_annotator.server import free_port


def start_annotator(project, *options: str, log_path=None):
    """``songexplorer annotate`` for ``project`` on a free port of 127.0.0.1, in its own process
    group; returns ``(process, url)`` once the URL it wrote (with its token) answers."""
    url_file = project.annotator_url_path
    url_file.unlink(missing_ok=True)
    command = [sys.executable, "-c", "import sys; from songexplorer_cli import main; sys.exit(main())",
               "annotate", "--project", str(project.root), "--port", str(free_port()), *options]
    log_path = log_path or project.root / "annotate.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while True:
        try:
            url = url_file.read_text().strip()
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                pytest.fail(f"the annotator did not start: {log_path.read_text()}")
            time.sleep(0.3)


def stop_annotator(process) -> int:
    """Stop an annotator started by :func:`start_annotator` (SIGTERM to its group); its exit status."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()
