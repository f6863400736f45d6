"""``songexplorer register``: add every recording in the project as a Dagster partition.

The ``new_recordings_sensor`` does this by itself when the Dagster daemon runs (README command 1).
Without the daemon, for scripting with ``dagster asset materialize``::

    export SONGEXPLORER_PROJECT=my-project DAGSTER_HOME=my-project/dagster_home
    for key in $(songexplorer register); do
        dagster asset materialize -m songexplorer_dagster.definitions \\
            --select recordings,detections,annotations --partition "$key"
    done

It prints one recording key per line (all of them, new or not) on stdout, and the counts on stderr.
"""

from __future__ import annotations

import os
import sys

from songexplorer_core.project import find_recordings, project_from_env


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "register",
        help="add every recording of the project as a Dagster partition (without the daemon)",
        description="Add every recording under the project's groundtruth/ as a partition of the Dagster "
        "instance in $DAGSTER_HOME and print every recording key, one a line (new or not), for "
        "`dagster asset materialize --partition KEY`. The new-recordings sensor does this by itself "
        "when the Dagster daemon runs.",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    import dagster as dg  # only this command needs Dagster

    from songexplorer_dagster.partitions import recordings_partitions

    if not os.environ.get("DAGSTER_HOME"):
        raise ValueError("DAGSTER_HOME is not set: export DAGSTER_HOME=<project>/dagster_home "
                         "(the instance `songexplorer init` created).")
    project = project_from_env()
    keys = list(find_recordings(project.groundtruth))
    instance = dg.DagsterInstance.get()  # $DAGSTER_HOME
    known = set(instance.get_dynamic_partitions(recordings_partitions.name))
    new = [k for k in keys if k not in known]
    if new:
        instance.add_dynamic_partitions(recordings_partitions.name, new)
    print(f"{len(new)} new, {len(keys)} recording(s) in {project.groundtruth}", file=sys.stderr)
    for key in keys:
        print(key)
    return 0
