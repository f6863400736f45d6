"""Serving the annotator: ``songexplorer annotate`` and ``panel serve songexplorer_annotator/panel_app.py``.

The server binds 127.0.0.1 unless told otherwise and accepts websocket connections only from
the address it serves, so a page elsewhere cannot drive it. One :class:`~songexplorer_annotator.app.AnnotatorApp`
is made per browser session.
"""

from __future__ import annotations

import socket
from pathlib import Path

import panel as pn

from songexplorer_annotator.app import create_app
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
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def serve(
    project_root: str | Path,
    *,
    address: str = DEFAULT_ADDRESS,
    port: int = DEFAULT_PORT,
    annotator: str | None = None,
    show: bool = False,
    threaded: bool = False,
    **options,
):
    """Serve the annotator for a project at ``http://<address>:<port>/annotate``.

    Args:
        project_root: the project folder.
        address: interface to bind (127.0.0.1: this machine only).
        port: TCP port (0 picks a free one).
        annotator: the annotator's name; when ``None`` each browser is asked once.
        show: open a browser tab.
        threaded: return at once with the server running in a thread (``.stop()`` ends it);
            otherwise block until interrupted.
        **options: passed to :class:`songexplorer_annotator.app.AnnotatorApp` (``context_s``, ``labels``...).
    """
    project = check_project(project_root)
    port = int(port) or free_port(address)

    def app():  # a plain function: Panel calls it once per browser session
        return create_app(project.root, annotator=annotator, **options)

    return pn.serve(
        {APP_PATH: app},
        address=address,
        port=port,
        websocket_origin=[f"{address}:{port}", f"localhost:{port}"] if address == DEFAULT_ADDRESS else f"{address}:{port}",
        show=show,
        threaded=threaded,
        title="SongExplorer annotator",
        verbose=False,
    )
