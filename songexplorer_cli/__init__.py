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
COMMANDS = ("init", "demo", "register", "detect", "annotate", "train", "accuracy", "classify", "ethogram", "congruence", "misses", "summaries", "activations", "cluster", "mistakes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="songexplorer",
        description="Find, label and measure animal song (SongExplorer's workflow, on Dagster).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"songexplorer_cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        # Our errors name the file and the fix: show them without a traceback.
        print(f"songexplorer {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
