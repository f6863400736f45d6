"""Names the Dagster layer shares: concurrency pools, check names.

Asset modules, jobs, sensors and tests import them from here, so each is written once.
"""

#: Concurrency pool of every step that uses the GPU. Its limit is the instance's pool limit
#: (``default_limit`` in dagster_home/dagster.yaml: the number of GPUs, ``songexplorer init --gpus N``).
#: On Kubernetes the same steps ask for a GPU through ``k8s_job_executor``'s per-step config
#: (``songexplorer_dagster.compute_resources``).
GPU_POOL = "gpu"

#: Checks of ``detections`` (in-step ``check_specs``).
INSIDE_CHECK = "intervals_within_recording"
ORDER_CHECK = "start_not_after_stop"
#: The promotion gate: a blocking check of ``trained_model`` (``defs/model/checks.py``).
PROMOTION_CHECK = "no_regression_on_dense_annotations"

#: Rows shown in markdown previews of interval tables (materialisations and failing checks).
PREVIEW_ROWS = 10
