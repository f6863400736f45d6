"""The ``songexplorer`` command line: every action of the platform, for scripting.

Each command is a module of this package with ``register(subparsers)`` and ``run(args)``;
``options`` holds flags several share. The commands call :mod:`songexplorer_core`; the two that
need more import it inside ``run``: ``annotate`` (:mod:`songexplorer_annotator`, Panel) and
``register`` (:mod:`songexplorer_dagster`), so the other commands start without either.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Command modules, in the order ``--help`` lists them.
COMMANDS = ("init", "demo", "status", "register", "plots", "detect", "annotate", "train", "autoencode", "accuracy", "classify", "ethogram", "congruence", "misses", "summaries", "activations", "cluster", "mistakes", "studies", "formats", "plugins")


def version_line() -> str:
    """``songexplorer-dagster X (dagster ..., mlflow ..., tensorflow ..., Python ...)``, read from
    the installed packages' metadata (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    libraries = ", ".join(f"{name} {of(name)}" for name in ("dagster", "mlflow", "tensorflow", "keras", "panel"))
    return f"songexplorer-dagster {of('songexplorer-dagster')} ({libraries}, Python {sys.version.split()[0]})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="songexplorer",
        description="Find, label and measure animal song (SongExplorer's workflow, on Dagster).",
    )
    parser.add_argument("--version", action="version", version=version_line(),
                        help="print the version of songexplorer-dagster and of the libraries it runs on")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"songexplorer_cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure ends as one line on stderr and a non-zero status.

    Expected failures (bad input or settings, a file missing, corrupt or in the way, a full
    disk, a read-only folder, a busy output folder or port: ``songexplorer_core.errors``) exit 2
    with their message; a bug exits 1 with one line too, and its traceback with
    ``SONGEXPLORER_DEBUG=1``; Ctrl-C exits 130.
    """
    from songexplorer_core.errors import DEBUG_VARIABLE, debugging, explain, is_expected

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if hasattr(args, "audio_reader"):  # a command that reads recordings (options.add_audio_options)
            from songexplorer_cli.options import configure_audio_from

            configure_audio_from(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"songexplorer {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 (the one place every failure becomes a message)
        if debugging():
            import traceback

            traceback.print_exc()
        if is_expected(error):
            # Our errors name the file and the fix: show them without a traceback.
            print(f"songexplorer {args.command}: error: {explain(error)}", file=sys.stderr)
            return 2
        hint = "" if debugging() else f" (run with {DEBUG_VARIABLE}=1 for the traceback)"
        print(f"songexplorer {args.command}: unexpected error: {type(error).__name__}: {explain(error)}{hint}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
