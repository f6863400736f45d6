"""Names the Dagster layer shares: concurrency pools, Kubernetes tags, check names.

Asset modules, jobs, sensors and tests import them from here, so each is written once.
"""

#: Concurrency pool of every step that uses the GPU (limit 1 in dagster.yaml: one step per card).
GPU_POOL = "gpu"
#: On Kubernetes (dagster-k8s), a GPU step's pod asks for one GPU.
GPU_OP_TAGS = {
    "dagster-k8s/config": {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}}
    }
}

#: Checks of ``detections`` (in-step ``check_specs``).
INSIDE_CHECK = "intervals_within_recording"
ORDER_CHECK = "start_not_after_stop"
#: The promotion gate: a blocking check of ``trained_model`` (``defs/model/checks.py``).
PROMOTION_CHECK = "no_regression_on_dense_annotations"

#: Rows shown in markdown previews of interval tables (materialisations and failing checks).
PREVIEW_ROWS = 10
