"""``songexplorer init DIR [--from PATH] [--link] [--gpus N]``: create a project folder (or set an
existing one's number of GPUs)."""

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
    parser.add_argument("--gpus", type=int, metavar="N",
                        help="GPU steps (training, classification) that may run at once: the number of GPUs "
                             "(the gpu pool's limit in dagster_home/dagster.yaml; 1 in a new project). "
                             "Also changes an existing project")
    parser.set_defaults(func=run)


def run(args) -> int:
    project = init_project(args.directory, from_groundtruth=args.from_groundtruth, link=args.link, gpus=args.gpus)
    settings = project.settings()
    recordings = find_recordings(project.groundtruth)
    print(f"project {project.root}: {len(recordings)} recording(s), "
          f"{settings.audio_tic_rate} Hz, {settings.audio_nchannels} channel(s)")
    if args.gpus is not None:
        print(f"gpu pool: {args.gpus} step(s) at once ({project.dagster_home / 'dagster.yaml'})")
    print(f"run it with: SONGEXPLORER_PROJECT={project.root} DAGSTER_HOME={project.dagster_home} "
          f"dagster dev -w workspace.yaml")
    return 0
