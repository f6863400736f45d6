"""Where the steps run: the executor switch, and what each step asks Kubernetes for.

**The switch.** ``SONGEXPLORER_EXECUTOR`` (read when the definitions load):

* unset, empty or ``local``: steps run on this machine. Jobs run with :data:`LOCAL_EXECUTOR` (one
  process per step, as Dagster's default, but forked from a server that has imported Dagster and
  the definitions once per run: 1.5-2.5 s from one step's end to the next one's start in a batched
  run, 3-6 s with Dagster's ``spawn``; docs/dagster.md, "Many recordings") or the
  ``in_process_executor`` the short jobs ask for.
* ``k8s``: every asset job, the implicit job that automation, sensors and the UI's "Materialize"
  launch, and the short jobs use dagster-k8s's ``k8s_job_executor``: one Kubernetes Job (one pod)
  per step, each asking for the step's own CPU, memory and GPUs. ``definitions.py`` sets it as the
  Definitions' default executor (:func:`with_step_executor`); the jobs that name an executor ask
  :func:`step_executor` for theirs.

**Per-step amounts** come from the project's ``songexplorer.toml`` (the project folder is on the
volume every pod mounts), in SongExplorer's per-task names (its ``configuration.py`` has
``train_ncpu_cores``, ``train_ngpu_cards``, ``train_ngigabytes_memory``, ...), one table per asset::

    [resources.detections]
    ncpu_cores = 2            # cores requested
    ngigabytes_memory = 4     # GiB requested, and the limit
    [resources.probabilities]
    ngpu_cards = 0            # classify on the CPU: the pod asks for no GPU
    ncpu_cores = 8
    [resources.gpu_nodes]     # how a GPU step reaches a GPU node
    tolerations = [{ key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" }]
    node_selector = { "cloud.google.com/gke-accelerator" = "nvidia-l4" }

A table's values replace the defaults (:data:`DEFAULT_STEP_RESOURCES`) for that step only. As in
SongExplorer, ``-1`` CPU cores or memory means "whatever the node has" (no request). The steps in
the ``gpu`` pool ask for one GPU by default; ``ngpu_cards = 0`` makes one a CPU step.
"""

from __future__ import annotations

import functools
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import dagster as dg

from songexplorer_core.project import Project, ProjectError, project_from_env

#: The switch: ``local`` (also unset or empty) or ``k8s``.
EXECUTOR_ENV = "SONGEXPLORER_EXECUTOR"
EXECUTORS = ("local", "k8s")
#: The Kubernetes extended resource of an NVIDIA GPU (NVIDIA's device plugin).
GPU_RESOURCE = "nvidia.com/gpu"
#: The ``[resources]`` table that says how GPU steps reach GPU nodes (not a step).
GPU_NODES = "gpu_nodes"
#: GPU nodes are usually tainted so that only pods asking for a GPU land there; GKE taints them
#: ``nvidia.com/gpu=present:NoSchedule`` and NVIDIA's GPU operator documents the same key.
DEFAULT_GPU_TOLERATIONS = ({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},)


@dataclass(frozen=True)
class StepResources:
    """What one step's pod asks for (SongExplorer's per-task names). ``None``: no request."""

    ncpu_cores: float | None = None  #: CPU cores requested (no CPU limit: a step may use idle cores)
    ngpu_cards: int = 0  #: GPUs (requested and limited: Kubernetes hands out whole cards)
    ngigabytes_memory: float | None = None  #: GiB of memory, requested and the limit

    def container_resources(self) -> dict[str, dict[str, str]]:
        """The container's ``resources`` (Kubernetes quantities)."""
        requests, limits = {}, {}
        if self.ncpu_cores is not None:
            requests["cpu"] = _cpu_quantity(self.ncpu_cores)
        if self.ngigabytes_memory is not None:
            requests["memory"] = limits["memory"] = _memory_quantity(self.ngigabytes_memory)
        if self.ngpu_cards:
            requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(self.ngpu_cards)
        return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


@dataclass(frozen=True)
class GpuNodes:
    """How a pod that asks for a GPU gets onto a GPU node."""

    tolerations: tuple[Mapping[str, Any], ...] = DEFAULT_GPU_TOLERATIONS
    node_selector: Mapping[str, str] | None = None


#: What each step asks for when the project sets nothing. The ``gpu`` pool's steps (training,
#: classification, the champion's activations and mistakes, studies) ask for one GPU; detection
#: and UMAP clustering for CPU and memory. A test holds the GPU ones equal to the ``gpu`` pool.
DEFAULT_STEP_RESOURCES: dict[str, StepResources] = {
    "detections": StepResources(ncpu_cores=1, ngigabytes_memory=2),
    "cluster": StepResources(ncpu_cores=2, ngigabytes_memory=8),
    "trained_model": StepResources(ngpu_cards=1, ncpu_cores=2, ngigabytes_memory=16),
    "model_study": StepResources(ngpu_cards=1, ncpu_cores=4, ngigabytes_memory=16),
    "probabilities": StepResources(ngpu_cards=1, ncpu_cores=2, ngigabytes_memory=8),
    "mistakes": StepResources(ngpu_cards=1, ncpu_cores=2, ngigabytes_memory=8),
    "activations": StepResources(ngpu_cards=1, ncpu_cores=2, ngigabytes_memory=8),
}


@dataclass(frozen=True)
class ComputeSettings:
    """Every step's requests (defaults merged with the project's tables) and the GPU nodes."""

    steps: Mapping[str, StepResources]
    gpu_nodes: GpuNodes = GpuNodes()

    def step(self, name: str) -> StepResources:
        return self.steps.get(name, StepResources())

    def per_step_k8s_config(self) -> dict[str, dict[str, Any]]:
        """``k8s_job_executor``'s ``per_step_k8s_config``: ``{op name: dagster-k8s config}``."""
        out = {}
        for name, step in sorted(self.steps.items()):
            config: dict[str, Any] = {}
            resources = step.container_resources()
            if resources:
                config["container_config"] = {"resources": resources}
            if step.ngpu_cards:
                pod_spec = {"tolerations": [dict(t) for t in self.gpu_nodes.tolerations]}
                if self.gpu_nodes.node_selector:
                    pod_spec["node_selector"] = dict(self.gpu_nodes.node_selector)
                config["pod_spec_config"] = pod_spec
            if config:
                out[name] = config
        return out


def executor_setting() -> str:
    """``local`` or ``k8s``, from ``$SONGEXPLORER_EXECUTOR``."""
    value = os.environ.get(EXECUTOR_ENV, "").strip().lower() or "local"
    if value not in EXECUTORS:
        raise ProjectError(f"{EXECUTOR_ENV}={value!r}: must be one of {', '.join(EXECUTORS)} (unset: local).")
    return value


def read_compute_settings(project: Project) -> ComputeSettings:
    """The defaults with the project's ``[resources]`` tables (``songexplorer.toml``) applied."""
    path = project.settings_path
    table = {}
    if path.exists():
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8")).get("resources", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ProjectError(f"{path}: not valid TOML ({error}).") from error
    if not isinstance(table, dict):
        raise ProjectError(f"{path}: resources must be a table of steps, e.g. [resources.detections]")
    steps = dict(DEFAULT_STEP_RESOURCES)
    gpu_nodes = GpuNodes()
    for name, values in table.items():
        where = f"{path}: [resources.{name}]"
        if not isinstance(values, dict):
            raise ProjectError(f"{where} must be a table, e.g. ncpu_cores = 2")
        if name == GPU_NODES:
            gpu_nodes = _gpu_nodes(values, where)
        else:
            steps[name] = replace(steps.get(name, StepResources()), **_step_values(values, where))
    return ComputeSettings(steps=steps, gpu_nodes=gpu_nodes)


def _step_values(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    allowed = [f.name for f in fields(StepResources)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ProjectError(f"{where}: unknown setting(s) {unknown}; the settings are {allowed}")
    out: dict[str, Any] = {}
    for key, value in values.items():
        number = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
        if key == "ngpu_cards":
            if not number or value != int(value) or value < 0:
                raise ProjectError(f"{where}: ngpu_cards must be a whole number of GPUs >= 0, not {value!r}")
            out[key] = int(value)
        elif number and value == -1:
            out[key] = None  # SongExplorer's "everything": no request
        elif not number or value <= 0:
            unit = "cores" if key == "ncpu_cores" else "GiB"
            raise ProjectError(f"{where}: {key} must be a number of {unit} > 0 (or -1: no request), not {value!r}")
        else:
            out[key] = value
    return out


def _gpu_nodes(values: Mapping[str, Any], where: str) -> GpuNodes:
    unknown = sorted(set(values) - {"tolerations", "node_selector"})
    if unknown:
        raise ProjectError(f"{where}: unknown setting(s) {unknown}; the settings are tolerations, node_selector")
    tolerations = values.get("tolerations", list(DEFAULT_GPU_TOLERATIONS))
    if not isinstance(tolerations, list) or not all(isinstance(t, dict) and t for t in tolerations):
        raise ProjectError(f'{where}: tolerations must be a list of tables, e.g. '
                           f'[{{ key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" }}]')
    selector = values.get("node_selector")
    if selector is not None and not (isinstance(selector, dict)
                                     and all(isinstance(v, str) for v in selector.values())):
        raise ProjectError(f'{where}: node_selector must be a table of labels, e.g. {{ gpu = "true" }}')
    return GpuNodes(tolerations=tuple(tolerations), node_selector=selector)


def _cpu_quantity(cores: float) -> str:
    return str(int(cores)) if float(cores).is_integer() else f"{round(cores * 1000)}m"


def _memory_quantity(gigabytes: float) -> str:
    return f"{int(gigabytes)}Gi" if float(gigabytes).is_integer() else f"{round(gigabytes * 1024)}Mi"


# -- executors ---------------------------------------------------------------------------------


@functools.cache
def _k8s_executor(project_root: str) -> dg.ExecutorDefinition:
    from dagster_k8s import k8s_job_executor  # noqa: PLC0415 - only when the switch is on

    settings = read_compute_settings(Project(Path(project_root)))
    return k8s_job_executor.configured(
        {"per_step_k8s_config": settings.per_step_k8s_config()}, name="k8s_job_executor"
    )


def _local_executor_config(config: dict) -> dict:
    if config["in_process"]:
        return {"in_process": {}}
    return {"multiprocess": {"start_method": {"forkserver": {}}}}


#: The local executor of every job that names none (automation's and the UI's runs among them):
#: Dagster's ``multi_or_in_process_executor`` whose multiprocess side starts steps with
#: ``forkserver`` (Dagster's own option; the server preloads the code location's module). In a
#: batched run of ``probabilities`` -> ``ethograms`` -> ``misses`` that saves two process starts
#: with their imports of Dagster and the definitions (docs/dagster.md, "Many recordings").
#: A run whose config says ``execution: {config: {in_process: true}}`` (:func:`chained_run_config`)
#: runs its steps one after the other in the run's own process instead.
LOCAL_EXECUTOR = dg.multi_or_in_process_executor.configured(
    _local_executor_config, name="multiprocess_forkserver",
    config_schema={"in_process": dg.Field(bool, default_value=False, description=(
        "Run the steps one after the other in the run's process (no process per step): for a "
        "chain of steps, such as a batch of recordings' probabilities -> ethograms -> misses"))})


def chained_run_config() -> dict:
    """Run config for a run whose steps form one chain (each waits for the one before, so a
    process per step buys no parallelism): locally, its steps run in the run's own process, where
    TensorFlow is imported and the model loaded once, and no step waits ~2 s for a process
    (docs/dagster.md, "Many recordings"); on Kubernetes each step keeps its own pod."""
    return {"execution": {"config": {"in_process": True}}} if executor_setting() == "local" else {}


def step_executor(local: dg.ExecutorDefinition | None = LOCAL_EXECUTOR) -> dg.ExecutorDefinition | None:
    """The executor for a job: ``local`` (:data:`LOCAL_EXECUTOR` unless the job names its own)
    unless the switch says ``k8s``, then ``k8s_job_executor`` with every step's requests (one
    definition, shared)."""
    if executor_setting() == "local":
        return local
    return _k8s_executor(str(project_from_env().root))


def with_step_executor(defs: dg.Definitions) -> dg.Definitions:
    """``defs`` with :data:`LOCAL_EXECUTOR` as its default executor; with the switch on, the k8s executor
    (for every job that names none, and for the runs automation and sensors launch), after
    checking that each configured step is one of its assets."""
    executor = step_executor()
    if executor is LOCAL_EXECUTOR:
        return dg.Definitions.merge(defs, dg.Definitions(executor=executor))
    settings = read_compute_settings(project_from_env())
    ops = {assets.node_def.name for assets in defs.resolve_asset_graph().assets_defs if assets.is_executable}
    unknown = sorted(set(settings.steps) - ops)
    if unknown:
        raise ProjectError(f"{project_from_env().settings_path}: [resources] names no asset {unknown}; "
                           f"the steps are {sorted(ops)}")
    return dg.Definitions.merge(defs, dg.Definitions(executor=executor))
