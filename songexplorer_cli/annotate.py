"""``songexplorer annotate``: serve the annotator (a Panel app) for a project on 127.0.0.1."""

from __future__ import annotations

from songexplorer_cli.options import check_port_free, nonnegative_float, port_number, positive_float

import sys

from pathlib import Path

from songexplorer_cli.options import LabelsOption, key_value
from songexplorer_core.project import project_from_env


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "annotate",
        help="serve the annotator: see, hear and label the project's recordings in a browser",
        description="Serve the annotator at http://ADDRESS:PORT/annotate. Annotations are saved beside "
        "each recording as <recording>-annotated-<name>.csv (atomically, merged with the file on disk); "
        "only the project's groundtruth/ is written to. Binds 127.0.0.1 (this machine only) by default. "
        "It opens only with the access token in the printed address (also written to <project>/run/annotator-url).",
    )
    parser.add_argument("--project", default=None,
                        help="project folder (default: $SONGEXPLORER_PROJECT, else ./songexplorer-project)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1; anything else lets other machines "
                        "read and annotate the recordings)")
    parser.add_argument("--port", type=port_number, default=5006, help="TCP port (default 5006; 0 picks a free one)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="another host name browsers may use to reach the annotator (this machine's DNS "
                        "name, a proxy's); repeatable. localhost, 127.0.0.1 and [::1] are always allowed on the "
                        "loopback interface, the --address otherwise; any other Host header is refused")
    parser.add_argument("--annotator", default=None,
                        help="your name, used in the file names of your annotations; if omitted, the app "
                        "asks once per browser")
    parser.add_argument("--context", type=positive_float, default=4.0,
                        help="default width of the context window, seconds (default 4)")
    parser.add_argument("--labels", default="", action=LabelsOption,
                        help="comma-separated labels for the label boxes (default: the most common labels "
                        "of the project's annotations)")
    parser.add_argument("--autosave", type=nonnegative_float, default=5.0,
                        help="seconds between automatic saves of unsaved changes; 0 saves only on the Save "
                        "button and when the page closes (default 5)")
    parser.add_argument("--show", action="store_true", help="open a browser tab")
    parser.add_argument("--action", default="point", metavar="NAME",
                        help="what a double-click in empty space annotates: 'point' (default), 'snap-to' (the loudest "
                        "tic nearby, SongExplorer's), or an installed plug-in (`songexplorer plugins`)")
    parser.add_argument("--action-parameter", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="the action's settings, e.g. search_ms=10 range_ms=1 for snap-to (repeat for more)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from songexplorer_annotator.server import serve  # panel is imported only when the annotator is served

    from songexplorer_core.annotation_actions import load_action
    from songexplorer_core.project import Project

    root = args.project or project_from_env().root
    load_action(args.action)  # an unknown or broken action stops here, naming the installed ones
    Project(Path(root).expanduser().resolve()).use_audio()  # the project's readers, filter and channel map
    labels = [x.strip() for x in args.labels.split(",") if x.strip()]
    if args.address not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.address} over plain HTTP: anyone on the network who learns the printed "
              f"token (it travels unencrypted) can read and annotate this project's recordings", file=sys.stderr)
    if args.port:
        check_port_free(args.address, args.port)  # one line, before the server starts
    serve(root, address=args.address, port=args.port, annotator=args.annotator, show=args.show,
          allow_hosts=args.allow_host, context_s=args.context, labels=labels, autosave_s=args.autosave,
          action=args.action, action_parameters=dict(args.action_parameter))
    return 0
