"""``songexplorer annotate`` as a server: it serves the app on 127.0.0.1 only, refuses pages from
other origins, and hands out no file of the project over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from songexplorer_annotator.server import free_port
from songexplorer_cli import main


@pytest.fixture(scope="module")
def served(demo):
    port = free_port()
    command = [sys.executable, "-c", "import sys; from songexplorer_cli import main; sys.exit(main())",
               "annotate", "--project", str(demo.root), "--port", str(port), "--annotator", "tester"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/annotate", timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                pytest.fail(f"the annotator did not start: {process.stdout.read().decode()}")
            time.sleep(0.3)
    yield base, port
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_app_page_is_served_with_its_scripts_from_the_server_itself(served):
    base, _ = served
    status, body = get(f"{base}/annotate")
    assert status == 200 and b"bokeh" in body.lower()
    assert b"cdn.bokeh.org" not in body and b"cdn.jsdelivr" not in body  # works offline


@pytest.mark.parametrize("path", [
    "/songexplorer.toml", "/groundtruth/demo-1.wav", "/annotate/../songexplorer.toml",
    "/static/..%2F..%2F..%2Fsongexplorer.toml", "/static/%2E%2E/%2E%2E/songexplorer.toml",
    "/annotate?recording=..%2Fsongexplorer.toml", "/annotate/groundtruth/demo-1.wav-annotated-seed.csv",
])
def test_no_project_file_is_handed_out_over_http(served, demo, path):
    base, _ = served
    status, body = get(base + path)
    assert b"audio_tic_rate" not in body  # songexplorer.toml
    assert b"annotated,mel-pulse" not in body  # an annotation CSV
    assert not body.startswith(b"RIFF")  # a recording
    assert status in (200, 403, 404, 400) and (status != 200 or b"bokeh" in body.lower())


def test_a_page_from_another_origin_cannot_open_a_session(served):
    websocket = pytest.importorskip("websocket")
    _, port = served
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"ws://127.0.0.1:{port}/annotate/ws", origin="http://evil.example", timeout=5)
    assert refused.value.status_code == 403


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (Linux's /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as handle:
            next(handle)
            for line in handle:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                    found.add(address)
    return found


def test_it_listens_on_the_loopback_interface_only(served):
    _, port = served
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("needs Linux's /proc/net/tcp to list listening sockets")
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and no 0.0.0.0 / ::


def test_annotate_refuses_a_folder_that_is_not_a_project(tmp_path, capsys):
    assert main(["annotate", "--project", str(tmp_path / "nothing"), "--port", "0"]) == 2
    assert "has no groundtruth/ folder" in capsys.readouterr().err
