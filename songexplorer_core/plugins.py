"""Plug-ins: what a lab ships as its own Python package, found through entry points.

SongExplorer loads its plug-ins from files named in ``configuration.py``
(``audio_read_plugin``, ``detect_plugin``, ``architecture_plugin``, ``ethogram_plugin``,
``gui_context_doubleclick_plugin``); here a plug-in is an entry point of an installed package, one
group per seam (:data:`GROUPS`), and is chosen by its name. The built-in ones are registered the
same way in this project's ``pyproject.toml``, so ``songexplorer plugins`` lists them beside a
lab's. What each group's object must be (call signatures, units) is in docs/plugins.md.

Loading is lazy: nothing is imported until a name is asked for (:func:`load`), and each object
is imported once per process. A name nobody installed fails with :class:`PluginError` naming
the group and the installed names; a plug-in whose import fails is reported with its package and
the error, and the other plug-ins of its group still load (:func:`load_group`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any

#: seam -> entry-point group. A lab's pyproject.toml declares e.g.
#: ``[project.entry-points."songexplorer.detectors"] my-detector = "my_lab.detect:detector"``.
GROUPS: dict[str, str] = {
    "audio_readers": "songexplorer.audio_readers",
    "detectors": "songexplorer.detectors",
    "architectures": "songexplorer.architectures",
    "ethograms": "songexplorer.ethograms",
    "actions": "songexplorer.actions",
}

#: What a member of each group is, for messages.
_WHAT = {"audio_readers": "audio reader", "detectors": "detector", "architectures": "architecture",
         "ethograms": "ethogram method", "actions": "double-click action"}

_LOADED: dict[tuple[str, str], Any] = {}
_INSTALLED: dict[str, dict] = {}


class PluginError(ValueError):
    """A plug-in is unknown, or its package is broken; the message names it, its package and the
    installed alternatives."""


class PluginWarning(UserWarning):
    """A plug-in could not be loaded and was left out; the message names it and its package."""


@dataclass(frozen=True)
class Plugin:
    """One installed plug-in: its name in its group, the package (distribution) that ships it
    with that package's version, and the object it names (``module:attribute``)."""

    group: str
    name: str
    package: str
    version: str
    target: str
    entry_point: metadata.EntryPoint

    def load(self) -> Any:
        """The plug-in's object, imported once per process.

        Raises:
            PluginError: naming the plug-in, its package and the import's error.
        """
        cache = (self.group, self.name)
        if cache not in _LOADED:
            try:
                _LOADED[cache] = self.entry_point.load()
            except Exception as error:  # noqa: BLE001 (a lab's package may fail in any way on import)
                raise PluginError(
                    f"{_WHAT[self.group]} {self.name!r} of package {self.package} {self.version} ({self.target}) "
                    f"cannot be loaded: {type(error).__name__}: {error}. Fix or reinstall {self.package}, or "
                    f"choose another {_WHAT[self.group]}.") from error
        return _LOADED[cache]


def _check_group(group: str) -> str:
    if group not in GROUPS:
        raise PluginError(f"no plug-in group {group!r}; the groups are {sorted(GROUPS)}")
    return GROUPS[group]


def installed(group: str) -> dict[str, Plugin]:
    """The plug-ins installed in ``group`` (a key of :data:`GROUPS`), ``{name: Plugin}`` sorted by
    name; nothing is imported (the list is read once per process: :func:`forget`). When two packages register one name, the first found is kept and
    the clash is warned about."""
    if group in _INSTALLED:
        return dict(_INSTALLED[group])
    found: dict[str, Plugin] = {}
    for entry in metadata.entry_points(group=_check_group(group)):
        distribution = getattr(entry, "dist", None)
        package = distribution.name if distribution is not None else "(unknown package)"
        version = distribution.version if distribution is not None else "?"
        plugin = Plugin(group=group, name=entry.name, package=package, version=version, target=entry.value,
                        entry_point=entry)
        if entry.name in found and found[entry.name].package != package:
            warnings.warn(f"{_WHAT[group]} {entry.name!r} is registered by both {found[entry.name].package} and "
                          f"{package}; using {found[entry.name].package}'s", PluginWarning, stacklevel=2)
            continue
        found.setdefault(entry.name, plugin)
    _INSTALLED[group] = dict(sorted(found.items()))
    return dict(_INSTALLED[group])


def _listing(plugins: dict[str, Plugin]) -> str:
    return ", ".join(f"{name} ({plugin.package})" for name, plugin in plugins.items()) or "none"


def find(group: str, name: str) -> Plugin:
    """The installed plug-in ``name`` of ``group`` (not loaded).

    Raises:
        PluginError: no such plug-in, naming the installed ones.
    """
    plugins = installed(group)
    if name not in plugins:
        raise PluginError(f"no {_WHAT[group]} named {name!r} is installed; installed: {_listing(plugins)}. "
                          f"A lab's {_WHAT[group]} is a package registering an entry point in group "
                          f"{GROUPS[group]!r} (docs/plugins.md).")
    return plugins[name]


def load(group: str, name: str) -> Any:
    """The object of plug-in ``name`` in ``group``, imported on first use.

    Raises:
        PluginError: unknown name (naming the installed ones) or a package that fails to import
            (naming it).
    """
    return find(group, name).load()


def load_group(group: str) -> dict[str, Any]:
    """Every loadable plug-in of ``group``, ``{name: object}``. One that fails to import is left
    out with a :class:`PluginWarning` naming it and its package; the others still load."""
    loaded = {}
    for name, plugin in installed(group).items():
        try:
            loaded[name] = plugin.load()
        except PluginError as error:
            warnings.warn(str(error), PluginWarning, stacklevel=2)
    return loaded


def names(group: str) -> list[str]:
    """Names installed in ``group``, sorted (nothing imported)."""
    return list(installed(group))


def describe() -> list[dict[str, str]]:
    """One row per installed plug-in (``group``, ``name``, ``package``, ``version``, ``object``,
    ``status``: ``ok`` or why it cannot be loaded), what ``songexplorer plugins`` prints. Every
    plug-in is imported to check it."""
    rows = []
    for group in GROUPS:
        for name, plugin in installed(group).items():
            try:
                plugin.load()
                status = "ok"
            except PluginError as error:
                cause = error.__cause__
                status = f"broken: {type(cause).__name__}: {cause}" if cause is not None else f"broken: {error}"
            rows.append({"group": group, "name": name, "package": plugin.package, "version": plugin.version,
                         "object": plugin.target, "status": status})
    return rows


def forget() -> None:
    """Forget the installed plug-ins and their imported objects, so the next call reads the
    installed packages again (after installing or removing one in a running process, and in tests)."""
    _LOADED.clear()
    _INSTALLED.clear()
