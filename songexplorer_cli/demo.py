"""``songexplorer demo DIR``: create a project filled with synthetic song and seed annotations."""

from __future__ import annotations

from pathlib import Path

from songexplorer_cli.options import positive_float, positive_int
from songexplorer_core.demo import add_demo_recording, make_demo_project
from songexplorer_core.project import Project, find_recordings


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="create a demo project of synthetic fly song",
        description="Create a project whose groundtruth/ holds synthetic fly-like song (pulse trains, "
        "sine bouts, ambient noise with clicks) and sparse seed annotations "
        "(<wav>-annotated-seed.csv) on all but the last recording, which carries dense annotations "
        "(<wav>-annotated-dense.csv, every pulse and sine bout; named dense in songexplorer.toml, so it is "
        "the test set of congruence and the promotion gate). Running it again changes nothing.",
    )
    parser.add_argument("directory", help="the project folder")
    parser.add_argument("--recordings", type=positive_int, default=3, help="number of recordings (default 3)")
    parser.add_argument("--duration", type=positive_float, default=120.0, help="seconds per recording (default 120)")
    parser.add_argument("--rate", type=positive_int, default=2500, help="sample rate, Hz (default 2500)")
    parser.add_argument("--annotations-per-label", type=positive_int, default=16,
                        help="seed annotations per label per annotated recording (default 16: "
                        "96 in all, as few as a person makes to start)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--no-dense", action="store_true",
                        help="no dense annotations (no congruence report, no promotion gate)")
    parser.add_argument("--add-recording", action="store_true",
                        help="add one more unannotated recording to an existing project (as a lab "
                        "copies in a new WAV) and exit; each one is new song (demo-<n>.wav, drawn with "
                        "the seed the n-th recording of a project made with --seed gets)")
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.add_recording:
        path = add_demo_recording(Project(Path(args.directory).resolve()), duration_s=args.duration, seed=args.seed)
        print(f"added {path}")
        return 0
    project = make_demo_project(
        args.directory, nrecordings=args.recordings, duration_s=args.duration, rate=args.rate,
        annotations_per_label=args.annotations_per_label, seed=args.seed, dense=not args.no_dense, progress=print,
    )
    print(f"demo project {project.root}: {len(find_recordings(project.groundtruth))} recording(s)")
    return 0
