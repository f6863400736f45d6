"""``python -m songexplorer_dagster register``: add every recording in the project as a partition.

The ``new_recordings_sensor`` does this by itself when the Dagster daemon runs (README command 1).
Without the daemon, for scripting with ``dagster asset materialize``::

    export SONGEXPLORER_PROJECT=my-project DAGSTER_HOME=my-project/dagster_home
    for key in $(python -m songexplorer_dagster register); do
        dagster asset materialize -m songexplorer_dagster.definitions \\
            --select recordings,detections,annotations --partition "$key"
    done

It prints one recording key per line (all of them, new or not).
"""

import argparse
import sys

import dagster as dg

from songexplorer_core.project import find_recordings, project_from_env
from songexplorer_dagster.partitions import recordings_partitions


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m songexplorer_dagster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["register"], help="register: add every recording as a partition")
    parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
