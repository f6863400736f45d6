"""``songexplorer plots``: serve the project's plots so Dagster's pages show them inline.

Dagster renders a markdown metadata value in place only when it is under 1000 characters, so a
plot embedded as data is hidden behind "[Show Markdown]"; a plot referenced by address is shown.
This small read-only server answers ``GET /<path under outputs/>.png`` and nothing else: no
other file type, no folder listing, no path leaving ``outputs/``, and only requests whose
``Host`` names the address it listens on (a page of another site cannot reach it through DNS
rebinding). ``scripts/start.sh`` starts it and sets ``SONGEXPLORER_PLOTS_URL`` for Dagster.
"""

from __future__ import annotations

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from songexplorer_core.links import DEFAULT_PLOTS_PORT
from songexplorer_core.project import Project, project_from_env

LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plots",
        help="serve the project's plots (PNGs under outputs/) for Dagster's pages",
        description="Serve the PNGs under <project>/outputs/ read-only, so the plots on Dagster's asset "
        "pages show inline; set SONGEXPLORER_PLOTS_URL=http://127.0.0.1:PORT for Dagster "
        "(scripts/start.sh does both).",
    )
    parser.add_argument("--project", default=None, help="the project folder (default $SONGEXPLORER_PROJECT)")
    parser.add_argument("--address", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PLOTS_PORT") or DEFAULT_PLOTS_PORT),
                        help=f"TCP port (default $PLOTS_PORT, else {DEFAULT_PLOTS_PORT})")
    parser.set_defaults(func=run)


def allowed_hosts(address: str, port: int) -> set[str]:
    """Host header values served: the address with its port (and the loopback names on loopback)."""
    names = set(LOOPBACK) if address in ("127.0.0.1", "localhost", "::1") else {address}
    return {f"{name}:{port}" for name in names}


def png_under(outputs: Path, url_path: str) -> Path | None:
    """The PNG that ``url_path`` names under ``outputs``, or ``None`` (not a PNG, outside, absent)."""
    relative = unquote(urlsplit(url_path).path).lstrip("/")
    if not relative.lower().endswith(".png"):
        return None
    path = (outputs / relative).resolve()
    if not path.is_relative_to(outputs) or not path.is_file():
        return None
    return path


def make_server(outputs: Path, address: str, port: int) -> ThreadingHTTPServer:
    outputs = outputs.resolve()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.headers.get("Host", "").lower() not in hosts:
                self.send_error(403, "this server answers only to the address it was started for")
                return
            path = png_under(outputs, self.path)
            if path is None:
                self.send_error(404)
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "max-age=3600")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):  # quiet on success: one line per request is noise
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    hosts = allowed_hosts(address, server.server_address[1])
    return server


def run(args) -> int:
    project = Project(Path(args.project).expanduser().resolve()) if args.project else project_from_env()
    server = make_server(project.outputs, args.address, args.port)
    print(f"plots of {project.outputs} at http://{args.address}:{server.server_address[1]}/", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
