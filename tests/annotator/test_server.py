"""``songexplorer annotate`` as a server: it serves the app on 127.0.0.1 only, to the person who
started it (the Host header, the start-up token and its cookie, issue 11 item 3), refuses pages
from other origins, serves only the routes the app needs, hands out no file of the project over
HTTP, and shows errors as one line (the traceback goes to its log)."""

from __future__ import annotations

import http.client
import logging
import os
import re
import shutil
import stat
from urllib.parse import parse_qs, urlsplit

import pytest
from bokeh.document import Document
from panel.io.state import set_curdoc

from songexplorer_annotator.access import allowed_hosts, app_url, cookie_name
from songexplorer_annotator.ui import Shared, register_page, report_exception, short_error
from songexplorer_cli import main
from songexplorer_core.project import Project

from annotator_test_helpers import start_annotator, stop_annotator


class Served:
    def __init__(self, project, process, url):
        self.project, self.process, self.url = project, process, url
        parts = urlsplit(url)
        self.port = parts.port
        self.token = parse_qs(parts.query)["token"][0]
        self.cookie = f"{cookie_name(self.port)}={self.token}"


@pytest.fixture(scope="module")
def served(demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("served") / "demo"
    shutil.copytree(demo.root, root, symlinks=True)
    project = Project(root)
    process, url = start_annotator(project, "--annotator", "tester")
    yield Served(project, process, url)
    stop_annotator(process)


def request(served, path: str, *, host: str | None = None, headers: dict | None = None, method: str = "GET"):
    """One request to the server with exactly these headers (no redirect followed):
    ``(status, headers, body)``."""
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True)
        connection.putheader("Host", f"127.0.0.1:{served.port}" if host is None else host)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def session_token(body: bytes) -> str:
    """The Bokeh session token a served page carries."""
    found = re.search(rb'"token":\s*"([^"]+)"', body)
    assert found, body[:500]
    return found.group(1).decode()


def websocket_handshake(served, *, origin: str, host: str | None = None, cookie: str | None = None) -> int:
    """The status of a websocket handshake to the app (101: opened)."""
    websocket = pytest.importorskip("websocket")
    status, _, body = request(served, f"/annotate?token={served.token}")
    headers = [f"Cookie: {cookie}"] if cookie else []
    try:
        connection = websocket.create_connection(
            f"ws://127.0.0.1:{served.port}/annotate/ws", origin=origin, host=host or f"127.0.0.1:{served.port}",
            header=headers, subprotocols=["bokeh", session_token(body)], timeout=10)
    except websocket.WebSocketBadStatusException as refused:
        return refused.status_code
    connection.close()
    return 101


# ---------------------------------------------------------------------------------------------
# the page, and what is not handed out


def test_the_app_page_is_served_with_its_scripts_from_the_server_itself(served):
    status, _, body = request(served, f"/annotate?token={served.token}")
    assert status == 200 and b"bokeh" in body.lower()
    assert b"cdn.bokeh.org" not in body and b"cdn.jsdelivr" not in body  # works offline


@pytest.mark.parametrize("path", [
    "/songexplorer.toml", "/groundtruth/demo-1.wav", "/annotate/../songexplorer.toml",
    "/static/..%2F..%2F..%2Fsongexplorer.toml", "/static/%2E%2E/%2E%2E/songexplorer.toml",
    "/annotate?recording=..%2Fsongexplorer.toml", "/annotate/groundtruth/demo-1.wav-annotated-seed.csv",
    "/run/annotator-url",
])
@pytest.mark.parametrize("with_token", [False, True])
def test_no_project_file_is_handed_out_over_http(served, path, with_token):
    headers = {"Cookie": served.cookie} if with_token else {}
    status, _, body = request(served, path, headers=headers)
    assert b"audio_tic_rate" not in body  # songexplorer.toml
    assert b"annotated,mel-pulse" not in body  # an annotation CSV
    assert not body.startswith(b"RIFF")  # a recording
    assert served.token.encode() not in body  # the token file
    assert status in (200, 302, 403, 404, 400) and (status != 200 or b"bokeh" in body.lower())


# ---------------------------------------------------------------------------------------------
# gate 1: the Host header


def test_a_dns_rebinding_page_is_refused_although_its_origin_equals_its_host(served):
    """A page of evil.example whose DNS name now points at 127.0.0.1 sends Host and Origin
    evil.example: refused on every route, even with the token (the Host check stands alone)."""
    rebound = f"evil.example:{served.port}"
    status, _, body = request(served, f"/annotate?token={served.token}", host=rebound)
    assert status == 403 and b"bokeh" not in body.lower()
    assert websocket_handshake(served, origin=f"http://{rebound}", host=rebound, cookie=served.cookie) == 403
    for path in ("/static/js/bokeh.min.js", "/favicon.ico", "/login"):
        assert request(served, path, host=rebound)[0] == 403


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "LOCALHOST:{port}"])
def test_the_loopback_names_are_accepted(served, host):
    status, _, body = request(served, f"/annotate?token={served.token}", host=host.format(port=served.port))
    assert status == 200 and b"bokeh" in body.lower()


@pytest.mark.parametrize("host", ["", "127.0.0.1", "127.0.0.1:1", "localhost.evil.example:{port}", "[::2]:{port}"])
def test_other_host_headers_are_refused(served, host):
    status, _, _ = request(served, f"/annotate?token={served.token}", host=host.format(port=served.port))
    assert status in (400, 403)


def test_allowed_hosts():
    assert allowed_hosts("127.0.0.1", 5006) == {"localhost:5006", "127.0.0.1:5006", "[::1]:5006"}
    assert allowed_hosts("10.0.0.5", 80, ["Lab-PC"]) == {"10.0.0.5:80", "lab-pc:80", "10.0.0.5", "lab-pc"}
    assert allowed_hosts("::1", 5006) >= {"[::1]:5006", "localhost:5006"}
    assert app_url("0.0.0.0", 5006, "annotate", "T", recording="a b.wav") == \
        "http://127.0.0.1:5006/annotate?token=T&recording=a+b.wav"


# ---------------------------------------------------------------------------------------------
# gate 3: the token


@pytest.mark.parametrize("query", ["", "?token=", "?token=wrong", "?recording=demo-1.wav"])
def test_without_the_token_no_session_is_made(served, query):
    status, headers, body = request(served, f"/annotate{query}")
    assert status == 302 and urlsplit(headers["Location"]).path.endswith("/login")
    assert b"bokeh" not in body.lower()
    status, _, body = request(served, "/login")
    assert status == 403 and b"access token" in body and b"bokeh" not in body.lower()


def test_the_token_sets_a_strict_httponly_cookie_that_opens_later_links(served):
    status, headers, body = request(served, f"/annotate?token={served.token}")
    assert status == 200
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(served.cookie + ";")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert served.token.encode() not in body  # never copied into the page
    # a link without the token, as the Dagster UI makes it: the cookie is enough
    status, _, body = request(served, "/annotate?recording=demo-2.wav&start=3", headers={"Cookie": served.cookie})
    assert status == 200 and b"bokeh" in body.lower()
    status, _, _ = request(served, "/annotate", headers={"Cookie": f"{cookie_name(served.port)}=wrong"})
    assert status == 302


def test_the_websocket_opens_only_with_the_cookie_and_from_the_page_origin(served):
    origin = f"http://127.0.0.1:{served.port}"
    assert websocket_handshake(served, origin=origin, cookie=served.cookie) == 101
    assert websocket_handshake(served, origin=origin) == 403  # no token
    assert websocket_handshake(served, origin="http://evil.example", cookie=served.cookie) == 403


def test_the_address_file_is_private_and_holds_the_printed_address(served):
    path = served.project.annotator_url_path
    assert path.read_text().strip() == served.url
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert served.url in (served.project.root / "annotate.log").read_text()  # printed at start


def test_the_address_file_is_removed_when_the_annotator_stops(project):
    process, url = start_annotator(project)
    assert project.annotator_url_path.read_text().strip() == url
    stop_annotator(process)
    assert not project.annotator_url_path.exists()


# ---------------------------------------------------------------------------------------------
# gate 2: only the routes the app needs


def mapped_files(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as handle:
        return handle.read()


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux's /proc/<pid>/maps")
def test_a_components_url_imports_nothing(served):
    """Panel's /components/<module>/... imported any module named in the path (tensorflow: +550 MB)."""
    assert "tensorflow" not in mapped_files(served.process.pid)
    for path in ("/components/tensorflow/Tensor/__css__/x.css", "/components/panel/Column/_stylesheets/x.css",
                 "/components/songexplorer_core.train/TrainConfig/__js__/a.js"):
        status, _, _ = request(served, path, headers={"Cookie": served.cookie})
        assert status in (403, 404)
    assert "tensorflow" not in mapped_files(served.process.pid)


@pytest.mark.parametrize("path", ["/annotate/autoload.js?bokeh-autoload-element=x", "/annotate/metadata",
                                  "/rest/session_info", "/liveness", "/admin"])
def test_routes_the_app_does_not_need_are_not_served(served, path):
    status, _, body = request(served, path, headers={"Cookie": served.cookie})
    assert status == 404 and b"bokeh" not in body.lower()


# ---------------------------------------------------------------------------------------------
# errors: one line on the page, the traceback in the log


def test_an_error_is_one_line_on_the_page_and_its_traceback_is_logged(project, caplog):
    shared = Shared(project, catalog=None, plot_width=100)
    with set_curdoc(Document()):
        register_page(shared)
        try:
            {}["missing"]
        except KeyError as error:
            with caplog.at_level(logging.ERROR, logger="songexplorer_annotator"):
                report_exception(error)
    shown = shared.message.object
    assert "Something went wrong (KeyError: &#x27;missing&#x27;)" in shown and "annotator&#x27;s log" in shown
    assert "Traceback" not in shown and "File " not in shown and "\n" not in shown
    record = caplog.records[-1]
    assert record.exc_info and record.exc_info[0] is KeyError  # the traceback goes to the log
    assert len(short_error(ValueError("x" * 1000 + "\nsecond line"))) < 400


def test_a_page_that_cannot_be_made_is_one_line(project, monkeypatch, caplog):
    from songexplorer_annotator import server

    def broken(*_args, **_kwargs):
        raise RuntimeError("the catalog broke\n  second line")

    monkeypatch.setattr(server, "create_app", broken)
    with caplog.at_level(logging.ERROR, logger="songexplorer_annotator"):
        page = server.make_page(project)
    assert "Something went wrong (RuntimeError: the catalog broke)" in page.object and "second line" not in page.object
    assert caplog.records[-1].exc_info[0] is RuntimeError


# ---------------------------------------------------------------------------------------------
# where it listens


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
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("needs Linux's /proc/net/tcp to list listening sockets")
    assert listening_addresses(served.port) == {"0100007F"}  # 127.0.0.1, and no 0.0.0.0 / ::


def test_annotate_refuses_a_folder_that_is_not_a_project(tmp_path, capsys):
    assert main(["annotate", "--project", str(tmp_path / "nothing"), "--port", "0"]) == 2
    assert "has no groundtruth/ folder" in capsys.readouterr().err


def test_a_message_the_server_cannot_handle_gets_no_traceback_back(served):
    """Bokeh answers a websocket message it cannot handle with an ERROR message; its traceback
    goes to the server's log, not to the page."""
    import json

    websocket = pytest.importorskip("websocket")
    _, _, body = request(served, f"/annotate?token={served.token}")
    connection = websocket.create_connection(
        f"ws://127.0.0.1:{served.port}/annotate/ws", origin=f"http://127.0.0.1:{served.port}",
        header=[f"Cookie: {served.cookie}"], subprotocols=["bokeh", session_token(body)], timeout=20)
    try:
        def receive():
            header = json.loads(connection.recv())
            metadata, content = json.loads(connection.recv()), json.loads(connection.recv())
            return header, metadata, content

        assert receive()[0]["msgtype"] == "ACK"
        for frame in ({"msgid": "probe-1", "msgtype": "PATCH-DOC"}, {},
                      {"events": [{"kind": "ModelChanged", "model": {"id": "no-such-model"}, "attr": "x", "new": 1}]}):
            connection.send(json.dumps(frame))
        header, _, content = receive()
        while header["msgtype"] != "ERROR":  # patches the session may send meanwhile
            header, _, content = receive()
    finally:
        connection.close()
    assert header["reqid"] == "probe-1" and content["text"] and content["traceback"] is None
    log = (served.project.root / "annotate.log").read_text()
    assert "a message from the page failed" in log and "Traceback" in log
