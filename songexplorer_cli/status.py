"""``songexplorer status [DIR]``: what the project holds and what is stale."""

from __future__ import annotations

from pathlib import Path

from songexplorer_core.project import Project, project_from_env


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "status",
        help="what the project holds: recordings, annotations per label, the champion and its scores, what is stale",
        description="Print the project's recordings, its annotations per label and annotator, the dense "
        "annotators, the champion model with its validation F1 per label (and dense-set F1 when logged), and "
        "what is stale: recordings not yet detected or classified, ethograms of another model version, "
        "annotations changed since the champion was trained. Reads the project folder and its MLflow store.",
    )
    parser.add_argument("directory", nargs="?", default=None,
                        help="the project folder (default $SONGEXPLORER_PROJECT, else ./songexplorer-project)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from songexplorer_core.status import format_status, project_status

    project = Project(Path(args.directory).expanduser().resolve()) if args.directory else project_from_env()
    if not project.groundtruth.is_dir():
        raise FileNotFoundError(f"{project.root}: not a project (no groundtruth/); create one with songexplorer init "
                                f"or songexplorer demo")
    print(format_status(project_status(project)))
    return 0
