"""Compute as a Dagster resource: CPU or GPU, and how many threads TensorFlow may use.

CPU by default on a laptop; ``device="auto"`` takes a GPU when one is visible (with memory growth
on, so processes can share it). On Kubernetes the steps that need a GPU request one through their
``dagster-k8s/config`` op tags (see ``assets/models.py``).
"""

from typing import Literal

import dagster as dg
from pydantic import Field


class ComputeResource(dg.ConfigurableResource):
    """How training and classification steps use the machine."""

    device: Literal["auto", "cpu", "gpu"] = Field(
        default="auto", description="'auto': a GPU if visible, else the CPU; 'cpu'; or 'gpu' (fail without one)."
    )
    threads: int | None = Field(
        default=None, description="TensorFlow intra-op threads; empty = every core."
    )

    def configure(self, log=None):
        """Apply the settings (before TensorFlow does any work); returns what was chosen."""
        from songexplorer_core.compute import configure_compute  # TensorFlow: only in the step

        info = configure_compute(self.device, self.threads)
        if log is not None:
            log.info(f"compute: {info}")
        return info
