"""``songexplorer init DIR [--from PATH] [--link]``: create a project folder."""

from __future__ import annotations

from songexplorer_core.project import find_recordings, init_project


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "init",
        help="create a project folder",
        description="Create a project folder (groundtruth/, outputs/, dagster_home/, mlflow/). "
        "With --from, copy (or link) an existing SongExplorer ground-truth folder in; it is "
        "never modified. Sample rate and channels are read off its first recording.",
    )
    parser.add_argument("directory", help="the project folder to create")
    parser.add_argument("--from", dest="from_groundtruth", metavar="PATH",
                        help="an existing SongExplorer ground-truth folder (WAVs and CSVs, any depth)")
    parser.add_argument("--link", action="store_true",
                        help="symlink groundtruth/ to --from instead of copying it")
    parser.set_defaults(func=run)


def run(args) -> int:
    project = init_project(args.directory, from_groundtruth=args.from_groundtruth, link=args.link)
    settings = project.settings()
    recordings = find_recordings(project.groundtruth)
    print(f"project {project.root}: {len(recordings)} recording(s), "
          f"{settings.audio_tic_rate} Hz, {settings.audio_nchannels} channel(s)")
    print(f"run it with: SONGEXPLORER_PROJECT={project.root} DAGSTER_HOME={project.dagster_home} "
          f"dagster dev -w workspace.yaml")
    return 0
