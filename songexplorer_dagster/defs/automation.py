"""What keeps the whole graph up to date without anyone asking: the automation sensor.

It evaluates the assets' automation conditions (eager per-recording annotations, probabilities
and ethograms; the first model once there is ground truth; the review assets that follow new
ethograms). Dagster's own default automation sensor starts stopped; this one runs from the start.
The other triggers live with their group: ``new_recordings_sensor`` (recordings),
``annotation_files_sensor`` (annotations) and ``nightly_retrain`` (model).
"""

import dagster as dg

automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    # 10 s (Dagster's default 30): a new champion or new recordings wait ~5 s, not ~15 s, for it;
    # a tick over the demo's graph takes well under a second (benchmarks/many_recordings.py)
    minimum_interval_seconds=10,
    description="Materialises assets whose automation conditions say so (new recordings, new champion).",
)
