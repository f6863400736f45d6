"""``songexplorer plugins``: what is installed in each plug-in group (name, package, version,
object), and whether it loads (docs/plugins.md)."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plugins",
        help="list the installed plug-ins: audio readers, detectors, architectures, ethogram methods, actions",
        description="List every plug-in installed in each group (Python entry points songexplorer.audio_readers, "
        "songexplorer.detectors, songexplorer.architectures, songexplorer.ethograms, songexplorer.actions): its "
        "name (what the command line and Dagster's config choose it by), the package that ships it and its "
        "version, the object it names, and whether it loads. Exits 1 when one is broken.",
    )
    parser.add_argument("--group", default=None, help="only this group (audio_readers, detectors, ...)")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tabulate import tabulate

    from songexplorer_core import plugins

    if args.group is not None and args.group not in plugins.GROUPS:
        raise ValueError(f"no plug-in group {args.group!r}; the groups are {', '.join(plugins.GROUPS)}")
    rows = [row for row in plugins.describe() if args.group in (None, row["group"])]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for group in plugins.GROUPS:
            if args.group not in (None, group):
                continue
            members = [row for row in rows if row["group"] == group]
            print(f"{group} ({plugins.GROUPS[group]}):")
            if members:
                table = [[r["name"], r["package"], r["version"], r["object"], r["status"]] for r in members]
                print(tabulate(table, headers=["name", "package", "version", "object", "status"]))
            else:
                print("  (none installed)")
            print()
    return 1 if any(row["status"] != "ok" for row in rows) else 0
