"""Serving the annotator: ``songexplorer annotate``.

The server binds 127.0.0.1 unless told otherwise and lets only the person who started it in
(:mod:`songexplorer_annotator.access`: the Host header, the routes served, a per-start token). One
:class:`~songexplorer_annotator.app.AnnotatorApp` is made per browser session; an error in it
is shown as one line on the page and logged, with its traceback, on the server's standard error.
"""

from __future__ import annotations

import html
import logging
import signal
import socket
import sys
from collections.abc import Iterable
from pathlib import Path

import panel as pn
from bokeh.server.views.ws import WSHandler
from bokeh.util.token import generate_secret_key
from tornado.web import Application
from panel.io.server import get_server

from songexplorer_annotator.access import (
    TOKEN_PARAMETER, TokenAuth, allowed_hosts, app_url, cookie_name, guard, new_token, remove_url_file, write_url_file,
)
from songexplorer_annotator.app import create_app
from songexplorer_annotator.ui import log, report_exception, short_error
from songexplorer_core.project import Project, ProjectError

#: The URL path of the app: ``http://<address>:<port>/annotate``.
APP_PATH = "annotate"
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 5006


def check_project(root: str | Path) -> Project:
    """The project at ``root``; refuses a folder without ``groundtruth/``."""
    project = Project(Path(root).expanduser().resolve())
    if not project.groundtruth.is_dir():
        raise ProjectError(
            f"{project.root} has no groundtruth/ folder: create a project with `songexplorer init` "
            f"or `songexplorer demo`, or point --project / SONGEXPLORER_PROJECT at one."
        )
    return project


def free_port(address: str = DEFAULT_ADDRESS) -> int:
    """A TCP port that is free on ``address`` right now."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _log_to_stderr() -> None:
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s annotator %(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


class _NoTracebackOverTheWebsocket:
    """Bokeh answers a websocket message it cannot handle with an ``ERROR`` message that carries
    the traceback (``bokeh.protocol.messages.error``); the traceback goes to the log instead."""

    async def send_message(self, message):
        if message.msgtype == "ERROR" and message.content.get("traceback"):
            log.error("a message from the page failed: %s\n%s", message.content.get("text"), message.content["traceback"])
            message.content = {**message.content, "traceback": None}
        return await super().send_message(message)


def _quiet_websockets(application: Application) -> None:
    """Give the app's websocket route a handler that sends no traceback to the page."""
    for rule in application.wildcard_router.rules:
        if isinstance(rule.target, type) and issubclass(rule.target, WSHandler):
            rule.target = type(rule.target.__name__, (_NoTracebackOverTheWebsocket, rule.target), {})


def make_page(project_root: str | Path, **options):
    """The app for one browser session, or, if it cannot be made, one line saying so (the
    traceback goes to the log)."""
    try:
        return create_app(project_root, **options)
    except Exception as error:
        log.error("the annotator page could not be made", exc_info=True)
        return pn.pane.HTML(f'<div role="alert" style="color:#a00">{html.escape(short_error(error))}</div>')


def serve(
    project_root: str | Path,
    *,
    address: str = DEFAULT_ADDRESS,
    port: int = DEFAULT_PORT,
    annotator: str | None = None,
    allow_hosts: Iterable[str] = (),
    token: str | None = None,
    show: bool = False,
    **options,
) -> None:
    """Serve the annotator for a project at ``http://<address>:<port>/annotate`` until interrupted
    (Ctrl-C or SIGTERM).

    Prints the address with its token (``...?token=...``) and writes it, mode 0600, to
    :attr:`~songexplorer_core.project.Project.annotator_url_path` (removed again at exit).

    Args:
        project_root: the project folder.
        address: interface to bind (127.0.0.1: this machine only).
        port: TCP port (0 picks a free one).
        annotator: the annotator's name; when ``None`` each browser is asked once.
        allow_hosts: more host names the browser may use for this server (a DNS name of this
            machine, a proxy's name); the address it binds, and localhost / 127.0.0.1 / [::1] for
            the loopback interface, are always allowed.
        token: the access token (default: a new random one).
        show: open a browser tab.
        **options: passed to :class:`songexplorer_annotator.app.AnnotatorApp` (``context_s``, ``labels``...).
    """
    project = check_project(project_root)
    port = int(port) or free_port(address)
    token = token or new_token()
    hosts = allowed_hosts(address, port, allow_hosts)
    _log_to_stderr()
    pn.config.exception_handler = report_exception  # tracebacks to the log, one line to the page

    def app():  # a plain function: Panel calls it once per browser session
        return make_page(project.root, annotator=annotator, **options)

    server = get_server(
        {APP_PATH: app},
        address=address,
        port=port,
        websocket_origin=sorted(h for h in hosts if not h.startswith("[")),  # Bokeh's list cannot hold IPv6 names
        show=False,
        start=False,
        title="SongExplorer annotator",
        verbose=False,
        auth_provider=TokenAuth(token, port),
        sign_sessions=True,  # Bokeh's signed session ids, with a per-start secret
        secret_key=generate_secret_key().encode(),
        exclude_cookies=[cookie_name(port)],  # the token never travels into the page's session data
    )
    guard(server._tornado, hosts, APP_PATH)
    _quiet_websockets(server._tornado)
    url = app_url(address, port, APP_PATH, token)
    url_file = project.annotator_url_path
    write_url_file(url_file, url)
    print(f"annotator: {url}\n  (project {project.root}; the address is also in {url_file}; Ctrl-C stops)",
          flush=True)

    def stop(*_args):
        server.io_loop.asyncio_loop.call_soon_threadsafe(server.io_loop.stop)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.start()
        if show:
            server.io_loop.add_callback(server.show, f"/{APP_PATH}?{TOKEN_PARAMETER}={token}")
        server.io_loop.start()
    finally:
        remove_url_file(url_file, url)
        server.stop()
