"""Jobs of the ``recordings`` group: what a new or changed WAV needs."""

import dagster as dg

from songexplorer_dagster.compute_resources import step_executor

#: Check one recording and detect its sounds: what a new or changed WAV needs. It is partitioned by
#: recordings_partitions, inferred from the assets (dagster 1.13 deprecates passing partitions_def
#: to define_asset_job, as redundant). Both steps run in
#: the run's own process (in_process_executor): they are short, and a subprocess per step would
#: cost more (importing numpy/scipy/dagster) than the steps themselves on a laptop. With
#: SONGEXPLORER_EXECUTOR=k8s each step is a pod instead (songexplorer_dagster.compute_resources).
detect_recordings_job = dg.define_asset_job(
    name="detect_recordings_job",
    selection=dg.AssetSelection.assets("recordings", "detections"),
    executor_def=step_executor(dg.in_process_executor),
    description="Check a recording's header, then detect its loud, tonal and quiet intervals.",
)
