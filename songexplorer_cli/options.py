"""Flags several commands share (not a command itself)."""

from __future__ import annotations


def add_compute_options(parser) -> None:
    """``--device`` and ``--threads`` for commands that run TensorFlow (a parser or group)."""
    from songexplorer_core.compute import DEVICES

    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where TensorFlow computes: a GPU when one is visible (auto), the CPU, or a GPU "
                        "(fail without one); default %(default)s")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow threads (default: all cores)")


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
