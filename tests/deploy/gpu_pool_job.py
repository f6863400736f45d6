"""A run of one GPU step, for the pool test (tests/deploy/test_postgres_instance.py).

The step is in the project's ``gpu`` pool (``songexplorer_dagster.constants.GPU_POOL``), so it is
limited exactly as ``trained_model`` and ``probabilities`` are. It writes a marker named after
its run into ``$GPU_POOL_TEST_MARKERS``, then waits until another run's marker is there (at most
``$GPU_POOL_TEST_WAIT_S`` seconds): when the pool lets two steps in, they meet and overlap for sure;
when it lets one in, the first waits in vain and the second starts after it finished.
"""

import os
import time
from pathlib import Path

import dagster as dg

from songexplorer_dagster.constants import GPU_POOL


@dg.op(pool=GPU_POOL)
def gpu_step(context: dg.OpExecutionContext) -> None:
    markers = Path(os.environ["GPU_POOL_TEST_MARKERS"])
    (markers / context.run_id).touch()
    deadline = time.monotonic() + float(os.environ["GPU_POOL_TEST_WAIT_S"])
    while len(list(markers.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)


@dg.job(executor_def=dg.multiprocess_executor)
def gpu_pool_job():
    gpu_step()
