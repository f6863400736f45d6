"""Flags several commands share (not a command itself)."""

from __future__ import annotations

import argparse


def add_compute_options(parser) -> None:
    """``--device`` and ``--threads`` for commands that run TensorFlow (a parser or group)."""
    from songexplorer_core.compute import DEVICES

    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where TensorFlow computes: a GPU when one is visible (auto), the CPU, or a GPU "
                        "(fail without one); default %(default)s")
    parser.add_argument("--threads", type=positive_int, default=None, help="TensorFlow threads (default: all cores)")


def configure_compute_from(args):
    """Apply ``--device``/``--threads`` before TensorFlow does any work; returns what was chosen."""
    from songexplorer_core.compute import configure_compute

    return configure_compute(args.device, args.threads)


def progress_bar(desc: str, unit: str, *, disable: bool, **tqdm_kwargs):
    """A progress bar on stderr and the ``progress(done, total)`` callback core functions take
    to move it. Returns ``(bar, progress)``; close the bar when done."""
    import sys

    from tqdm import tqdm

    bar = tqdm(total=None, desc=desc, unit=unit, disable=disable, file=sys.stderr, **tqdm_kwargs)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, progress


# -- numbers checked where they are parsed: argparse prints "argument --x: ..." and exits 2 --------


def _number(text: str, kind, what: str):
    import argparse
    import math

    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def _ranged(kind, low=None, high=None, *, low_open=False, what: str):
    import argparse

    def parse(text: str):
        value = _number(text, kind, what)
        if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


#: a whole number >= 1 (steps, batch sizes, counts, Hz)
positive_int = _ranged(int, 1, what="a whole number >= 1")
#: a whole number >= 0 (periods where 0 means "never")
nonnegative_int = _ranged(int, 0, what="a whole number >= 0")
#: a number > 0 (rates, durations)
positive_float = _ranged(float, 0.0, low_open=True, what="a number > 0")
#: a number >= 0
nonnegative_float = _ranged(float, 0.0, what="a number >= 0")
#: a fraction or probability, 0 to 1
fraction = _ranged(float, 0.0, 1.0, what="a number from 0 to 1")
#: a percentage, 0 to 100
percentage = _ranged(float, 0.0, 100.0, what="a percentage from 0 to 100")
#: a percentage that may be negative (SongExplorer's cross-validation swaps the slice)
signed_percentage = _ranged(float, -100.0, 100.0, what="a percentage from -100 to 100")
#: a TCP port (0: any free one)
port_number = _ranged(int, 0, 65535, what="a TCP port, 0 to 65535")


def check_port_free(address: str, port: int) -> None:
    """Raise ``OSError(EADDRINUSE)`` naming ``address:port`` when something already listens there
    (so a server fails with one line before it starts, not with a traceback from inside it)."""
    import errno
    import socket

    if port == 0:
        return
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise OSError(errno.EADDRINUSE, f"port {port} on {address} is already in use",
                              f"{address}:{port}") from None
            raise


class LabelsOption(argparse.Action):
    """The action of flags that take labels (``--labels mel-pulse,ambient``): every label is
    checked (``songexplorer_core.labels.check_label``: a name, never a path), so a bad one stops
    the command before it starts with argparse's usage error naming the flag. Stores the labels
    joined by commas, without the spaces around them or empty items. ``single=True``: the flag
    takes one label or label prefix (``--overlapped-prefix not_``)."""

    def __init__(self, *args, single: bool = False, **kwargs):
        self.single = single
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from songexplorer_core.labels import LabelError, check_label, parse_labels

        # argparse hands over a list for a value it took apart (``--labels=--``)
        text = ",".join(values) if isinstance(values, list) else str(values)
        try:
            value = check_label(text.strip()) if self.single else ",".join(parse_labels(text))
        except LabelError as error:
            parser.error(f"argument {option_string}: {error}")
        setattr(namespace, self.dest, value)


# -- plug-ins and audio readers (docs/plugins.md) ----------------------------------------------


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> ``(KEY, VALUE)`` (a plug-in's parameter; the value stays text)."""
    import argparse

    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key.strip(), value


def channel_map(text: str) -> dict[str, list[int]]:
    """``left=0,right=1`` (or ``both=0+1``) -> ``{"left": [0], "right": [1]}``: recording names and
    their 0-based channels."""
    import argparse

    mapping = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, equals, channels = part.partition("=")
        try:
            numbers = [int(c) for c in channels.split("+")]
        except ValueError:
            numbers = []
        if not equals or not name.strip() or not numbers or min(numbers) < 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not NAME=CHANNEL[+CHANNEL],... (e.g. left=0,right=1)")
        mapping[name.strip()] = numbers
    return mapping


def add_audio_options(parser) -> None:
    """``--audio-reader``, ``--highpass-hz`` and ``--channel-map`` for commands that read recordings;
    unset, they take the project's songexplorer.toml ($SONGEXPLORER_PROJECT) when it has one."""
    group = parser.add_argument_group("reading recordings (default: the project's songexplorer.toml, docs/plugins.md)")
    group.add_argument("--audio-reader", default=None, metavar="NAME",
                       help="audio reader by name (`songexplorer plugins` lists them); default: by file suffix")
    group.add_argument("--highpass-hz", type=nonnegative_float, default=None, metavar="HZ",
                       help="high-pass filter every recording at this cut-off, Hz (0: none)")
    group.add_argument("--channel-map", type=channel_map, default=None, metavar="NAME=CH,...",
                       help="one recording per name from each file's channels, e.g. left=0,right=1 "
                       "(recordings <file>-left, <file>-right)")


def configure_audio_from(args) -> None:
    """Put the audio settings in force: the project's ($SONGEXPLORER_PROJECT, when its
    songexplorer.toml exists), with the command's flags where given."""
    from songexplorer_core.audio_readers import AudioSettings, configure_audio
    from songexplorer_core.project import project_from_env

    overrides = {"reader": getattr(args, "audio_reader", None), "highpass_hz": getattr(args, "highpass_hz", None),
                 "channel_map": getattr(args, "channel_map", None)}
    project = project_from_env()
    if project.settings_path.exists():
        project.use_audio(**overrides)
    else:
        configure_audio(AudioSettings.make(**{k: v for k, v in overrides.items() if v is not None}))


def tracking_from(uri: str | None, groundtruth: str | None, disabled: bool = False):
    """The tracking store ``--mlflow`` names (a URI, or a folder for SQLite and artifacts inside),
    else the project's when ``groundtruth`` lies in a project's ``groundtruth/``; ``None`` if neither."""
    from pathlib import Path

    from songexplorer_core.project import SETTINGS_FILE, Project
    from songexplorer_core.tracking import TrackingConfig

    if disabled:
        return None
    if uri:
        if "://" in uri or uri.startswith("sqlite:"):
            if uri.startswith("sqlite:///"):
                folder = Path(uri.removeprefix("sqlite:///")).resolve().parent
                return TrackingConfig(tracking_uri=uri, artifact_location=(folder / "artifacts").as_uri())
            return TrackingConfig(tracking_uri=uri)
        return TrackingConfig.for_project_dir(uri)
    if groundtruth:
        for folder in Path(groundtruth).resolve().parents:
            if (folder / SETTINGS_FILE).is_file():
                return TrackingConfig.for_project_dir(Project(folder).mlflow_dir)
    return None
