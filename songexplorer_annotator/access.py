"""Who may reach the annotator, and what the server answers (docs/reliability.md, "Annotator threat
model").

Three gates stand before the app, in this order, for every HTTP request and websocket handshake:

1. **Host.** The ``Host`` header must name the server as it was started: ``localhost``,
   ``127.0.0.1`` or ``[::1]`` with the port when it listens on the loopback interface, the
   address it listens on otherwise, and any name given with ``--allow-host``. A page of another
   site that rebinds its DNS name to 127.0.0.1 sends its own name and is refused (403), whatever
   its ``Origin`` says.
2. **Routes.** Only what the app needs is served: the page (``/annotate``), its websocket, the
   scripts and styles under ``/static/``, the favicon and the token page (``/login``). Panel's
   ``/components/<module>/...`` route (which imports any module a URL names) and Bokeh's
   ``autoload.js`` (which opens a session for any page that includes it) answer 404.
3. **Token.** A secret made at start (:func:`new_token`, as Jupyter's) must come with the page's
   URL (``?token=...``); the server then sets a cookie (HttpOnly, SameSite=Strict) so later
   links in that browser need no token. The websocket is opened only with the cookie, and Bokeh
   signs its session ids with another per-start secret, so no page without the token reaches a
   session. The token is compared in constant time.

The address with its token is printed at start and written (mode 0600) to
:attr:`songexplorer_core.project.Project.annotator_url_path`, where ``scripts/start.sh`` reads it.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlencode

from bokeh.server.auth_provider import AuthProvider
from tornado.httputil import HTTPServerRequest
from tornado.routing import Matcher, Rule
from tornado.web import Application, RequestHandler

from songexplorer_core.atomic import atomic_write

#: The query parameter that carries the token.
TOKEN_PARAMETER = "token"
#: Host names of the loopback interface a browser may use.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
LOOPBACK_ADDRESSES = ("127.0.0.1", "localhost", "::1")
#: The token page (where a request without the token is sent).
LOGIN_PATH = "/login"


def new_token() -> str:
    """A fresh secret: 32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def cookie_name(port: int) -> str:
    """The cookie holding the token. Browsers share cookies between the ports of one host, so
    the name carries the port: two annotators on one machine keep their own."""
    return f"songexplorer-annotator-{int(port)}"


def host_name(address: str) -> str:
    """``address`` as it appears in a Host header (IPv6 addresses in brackets), lower case."""
    address = address.strip().lower()
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def allowed_hosts(address: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host header values the server accepts: ``name:port`` for the names it was started for
    (and the bare name when the port is 80, which browsers leave out)."""
    names = {host_name(address)}
    if address in LOOPBACK_ADDRESSES:
        names |= set(LOOPBACK_NAMES)
    names |= {host_name(n) for n in extra if n.strip()}
    hosts = {f"{n}:{int(port)}" for n in names}
    if int(port) == 80:
        hosts |= names
    return frozenset(hosts)


def app_url(address: str, port: int, path: str, token: str | None = None, **query) -> str:
    """``http://<address>:<port>/<path>`` with ``token`` and ``query`` (address ``0.0.0.0``/``::``
    becomes 127.0.0.1, where a browser on this machine reaches it)."""
    host = "127.0.0.1" if address in ("0.0.0.0", "::", "") else host_name(address)
    parameters = ({TOKEN_PARAMETER: token} if token else {}) | {k: v for k, v in query.items() if v is not None}
    return f"http://{host}:{int(port)}/{path.lstrip('/')}" + (f"?{urlencode(parameters)}" if parameters else "")


# ---------------------------------------------------------------------------------------------
# gates 1 and 2: a rule in front of every route


class RefusedRequests(Matcher):
    """Matches the requests to refuse: a Host that is not allowed (403), or a path the app does not
    need (404); the match hands :class:`RefusedHandler` the status and reason."""

    def __init__(self, hosts: frozenset[str], app_path: str):
        self.hosts = hosts
        # the app page, its websocket, Bokeh's and Panel's scripts and styles, the favicon, the token page
        app = re.escape(app_path.strip("/"))
        self.served = re.compile(rf"^/(?:|{app}/?|{app}/ws|static/.+|favicon\.ico|{LOGIN_PATH.strip('/')})$")

    def match(self, request: HTTPServerRequest):
        host = (request.headers.get("Host") or "").strip().lower()
        if host not in self.hosts:
            return {"target_kwargs": {"status": 403, "reason": "this server answers only to the addresses it was started for"}}
        if not self.served.match(request.path):
            return {"target_kwargs": {"status": 404, "reason": "not served"}}
        return None


class RefusedHandler(RequestHandler):
    """Answers a refused request with its status and a one-line reason, whatever the method."""

    def initialize(self, status: int, reason: str):
        self.status, self.reason = status, reason

    def prepare(self):
        self.set_status(self.status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{self.status}: {self.reason}\n")


def guard(application: Application, hosts: frozenset[str], app_path: str) -> None:
    """Put gates 1 and 2 in front of every route of a Tornado ``application`` (Bokeh's)."""
    router = application.default_router
    router.rules.insert(0, router.process_rule(Rule(RefusedRequests(hosts, app_path), RefusedHandler)))


# ---------------------------------------------------------------------------------------------
# gate 3: the token


class TokenRequiredHandler(RequestHandler):
    """The token page: a request without the token is sent here; it says where the token is."""

    def get(self):
        self.set_status(403)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(
            "<!doctype html><title>SongExplorer annotator: token needed</title>"
            "<h3>This annotator opens only with its access token.</h3>"
            "<p>Open the address <code>songexplorer annotate</code> (or <code>scripts/start.sh</code>) printed "
            "when it started, <code>http://…/annotate?token=…</code>; it is also in the project's "
            "<code>run/annotator-url</code> file. After that, links without the token work in this browser.</p>"
        )


class TokenAuth(AuthProvider):
    """Bokeh's authentication hook (:class:`bokeh.server.auth_provider.AuthProvider`): a request
    is the owner's when it carries the start-up token, in the URL or in the cookie that a URL with
    the token sets."""

    def __init__(self, token: str, port: int):
        self._token = token.encode()
        self._cookie = cookie_name(port)
        super().__init__()

    def matches(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self._token)

    def _user(self, handler: RequestHandler):
        if self.matches(handler.get_query_argument(TOKEN_PARAMETER, None)):
            handler.set_cookie(self._cookie, self._token.decode(), path="/", httponly=True, samesite="Strict")
            return "owner"
        if self.matches(handler.get_cookie(self._cookie)):
            return "owner"
        return None

    @property
    def get_user(self):
        return self._user

    @property
    def login_url(self):
        return LOGIN_PATH

    @property
    def login_handler(self):
        return TokenRequiredHandler


# ---------------------------------------------------------------------------------------------
# the address file


def write_url_file(path: Path, url: str) -> None:
    """Write ``url`` (with its token) to ``path``, readable by its owner only (0600, in a 0700 folder)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    with atomic_write(path) as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(url + "\n")


def remove_url_file(path: Path, url: str) -> None:
    """Remove ``path`` if it still holds ``url`` (a later annotator may have replaced it)."""
    try:
        if path.read_text().strip() == url:
            path.unlink()
    except OSError:
        pass
