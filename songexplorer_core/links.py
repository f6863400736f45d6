"""Addresses that link the platform's pages: a recording in the annotator, a plot of ``outputs/``.

Dagster's pages carry these as links (a partition page opens its recording in the annotator at
the first sound of interest) and as inline images. Both base addresses come from the
environment that ``scripts/start.sh`` sets, with its defaults:

* ``SONGEXPLORER_ANNOTATOR_URL`` (else ``http://127.0.0.1:$ANNOTATOR_PORT/annotate``, port 5006):
  the annotator's page, which takes ``?recording=<key>&start=<seconds>&width=<seconds>``
  (docs/annotator.md). The link carries no access token: the browser that opened the annotator
  once with it (the address ``start.sh`` prints) keeps a cookie.
* ``SONGEXPLORER_PLOTS_URL`` (no default): where ``songexplorer plots`` serves the PNGs of
  ``outputs/``. Unset, plots are embedded in the metadata instead (Dagster then shows them
  behind "[Show Markdown]": it renders markdown inline only under 1000 characters).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, urlencode

#: The annotator's port when neither variable says otherwise (``songexplorer annotate --port``).
DEFAULT_ANNOTATOR_PORT = 5006
#: ``songexplorer plots``' port when ``PLOTS_PORT`` does not say otherwise.
DEFAULT_PLOTS_PORT = 5007


def annotator_base_url() -> str:
    """The annotator page's address: ``$SONGEXPLORER_ANNOTATOR_URL``, else
    ``http://127.0.0.1:<$ANNOTATOR_PORT or 5006>/annotate``."""
    explicit = os.environ.get("SONGEXPLORER_ANNOTATOR_URL", "").strip()
    if explicit:
        return explicit.rstrip("/")
    port = os.environ.get("ANNOTATOR_PORT", "").strip() or DEFAULT_ANNOTATOR_PORT
    return f"http://127.0.0.1:{int(port)}/annotate"


def annotator_url(key: str, start_s: float | None = None, *, width_s: float | None = None,
                  base: str | None = None) -> str:
    """The annotator opened on recording ``key`` (its partition key), the window starting at
    ``start_s`` seconds (clipped at 0) and ``width_s`` seconds wide (the annotator's default when
    ``None``)."""
    query = {"recording": key}
    if start_s is not None:
        query["start"] = f"{max(0.0, float(start_s)):.3f}".rstrip("0").rstrip(".")
    if width_s is not None:
        query["width"] = f"{float(width_s):g}"
    return f"{base or annotator_base_url()}?{urlencode(query)}"


def place_of_interest(starts_tics, rate: int, *, lead_s: float = 1.0) -> float | None:
    """Where to open a recording: ``lead_s`` seconds before the first of ``starts_tics`` (the
    sounds of interest, tics), in seconds; ``None`` when there are none."""
    starts = [int(s) for s in starts_tics]
    if not starts:
        return None
    return max(0.0, min(starts) / rate - lead_s)


def plots_base_url() -> str | None:
    """``$SONGEXPLORER_PLOTS_URL`` without its trailing slash, or ``None`` when unset."""
    value = os.environ.get("SONGEXPLORER_PLOTS_URL", "").strip()
    return value.rstrip("/") or None


def plot_url(outputs: str | os.PathLike, path: str | os.PathLike, *, base: str | None = None) -> str | None:
    """The address at which ``songexplorer plots`` serves ``path`` (a file under ``outputs``),
    with its modification time as a version so a browser never shows an older plot; ``None``
    when no plots server is named or the file is not under ``outputs``."""
    base = base or plots_base_url()
    path, outputs = Path(path).resolve(), Path(outputs).resolve()
    if base is None or not path.is_relative_to(outputs):
        return None
    relative = quote(path.relative_to(outputs).as_posix())
    return f"{base}/{relative}?v={path.stat().st_mtime_ns}"
