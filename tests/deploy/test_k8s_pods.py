"""The pods Kubernetes would get, built by dagster-k8s itself from the project's real steps.

No API server runs here, so dagster-k8s's own code builds each Job exactly as it would on a
cluster and the test catches it where it would be sent (``create_namespaced_job``): the run pod
from ``K8sRunLauncher.launch_run``, each step's pod from ``k8s_job_executor``'s step handler
(``launch_step``), with the run launcher and the code location's container context taken from
``deploy/helm/values.yaml`` the way the Dagster chart passes them on. Each Job must pass the strict
JSON schemas (no unknown fields) of two current Kubernetes versions (``kubernetes-validate``,
which ships the schemas: nothing is downloaded).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import dagster as dg
import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.execution.api import create_execution_plan
from dagster._core.execution.context.system import PlanData, PlanOrchestrationContext
from dagster._core.execution.context_creation_job import create_context_free_log_manager
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.init import InitExecutorContext
from dagster._core.executor.step_delegating.step_handler.base import StepHandlerContext
from dagster._core.launcher import LaunchRunContext
from dagster._core.system_config.objects import ResolvedRunConfig
from dagster._core.test_utils import create_run_for_test
from dagster._grpc.types import ExecuteStepArgs
from dagster_k8s import K8sRunLauncher
from dagster_k8s.client import DagsterKubernetesClient

from songexplorer_core.project import PROJECT_ENV, ProjectError, ProjectSettings, init_project
from songexplorer_dagster import compute_resources
from songexplorer_dagster.compute_resources import EXECUTOR_ENV, GPU_RESOURCE, read_compute_settings
from songexplorer_dagster.constants import GPU_POOL

REPO = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
#: Two current Kubernetes versions whose strict schemas every Job must pass.
KUBERNETES_VERSIONS = ("1.36.0", "1.37.0")
#: What the Dagster chart names things for a release called "songexplorer" in namespace "songexplorer".
NAMESPACE = "songexplorer"
FULLNAME = "songexplorer-dagster"
DEPLOYMENT = VALUES["dagster-user-deployments"]["deployments"][0]
IMAGE = f"{DEPLOYMENT['image']['repository']}:{DEPLOYMENT['image']['tag']}"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: test, user: {token: not-a-token}}]
contexts: [{name: test, context: {cluster: test, user: test, namespace: songexplorer}}]
current-context: test
"""
#: The project's own requests, as a lab would write them in songexplorer.toml.
SETTINGS = """
[resources.detections]
ncpu_cores = 3
ngigabytes_memory = 6
[resources.probabilities]
ngpu_cards = 0
ncpu_cores = 8
"""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def launcher_config(kubeconfig: Path) -> dict:
    """``runLauncher.config.k8sRunLauncher`` of the values as the chart's instance ConfigMap
    hands it to ``K8sRunLauncher`` (camelCase values keys -> the launcher's config keys)."""
    values = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    config = {
        "service_account_name": FULLNAME,
        "instance_config_map": f"{FULLNAME}-instance",
        "postgres_password_secret": "dagster-postgresql-secret",
        "dagster_home": "/opt/dagster/dagster_home",
        "job_namespace": NAMESPACE,
        "load_incluster_config": False,  # the values say true: inside a cluster; here a kubeconfig
        "kubeconfig_file": str(kubeconfig),
    }
    for key in ("imagePullPolicy", "envConfigMaps", "envSecrets", "envVars", "volumes", "volumeMounts"):
        if values.get(key):
            config[_snake(key)] = values[key]
    if values.get("runK8sConfig"):
        config["run_k8s_config"] = {_snake(k): v for k, v in values["runK8sConfig"].items()}
    return config


def code_location_container_context() -> dict:
    """What ``includeConfigInLaunchedRuns`` passes from the user deployment to its runs (the
    chart's ``dagsterUserDeployments.k8sContainerContext`` helper)."""
    return {"k8s": {
        "image_pull_policy": DEPLOYMENT["image"]["pullPolicy"],
        "env_config_maps": [f"{FULLNAME}-{DEPLOYMENT['name']}-user-env"],
        "volume_mounts": DEPLOYMENT["volumeMounts"],
        "volumes": DEPLOYMENT["volumes"],
        "namespace": NAMESPACE,
        "service_account_name": f"{FULLNAME}-user-deployments",
        "env": DEPLOYMENT["env"],
        "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}},
    }}


@pytest.fixture
def k8s(tmp_path, monkeypatch):
    """The switch on, a project with its own [resources], an instance whose run launcher is the
    values' K8sRunLauncher, and the definitions as they load with the switch on."""
    project = init_project(tmp_path / "project", settings=ProjectSettings())
    with project.settings_path.open("a") as handle:
        handle.write(SETTINGS)
    monkeypatch.setenv(PROJECT_ENV, str(project.root))
    monkeypatch.setenv(EXECUTOR_ENV, "k8s")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    defs = compute_resources.with_step_executor(
        dg.load_from_defs_folder(path_within_project=REPO / "songexplorer_dagster"))
    overrides = {"run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher",
                                  "config": launcher_config(kubeconfig)}}
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path / "instance")) as instance:
        yield defs, instance, kubeconfig


def _origin(job_name: str):
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    origin = ReconstructableRepository.for_module("songexplorer_dagster.definitions", "defs",
                                                  str(REPO)).get_reconstructable_job(job_name).get_python_origin()
    return origin._replace(repository_origin=origin.repository_origin._replace(
        container_image=IMAGE, container_context=code_location_container_context()))


def run_pod(defs, instance, kubeconfig, job_name: str) -> dict:
    """The Job ``K8sRunLauncher`` creates for a run of ``job_name``."""
    batch = mock.MagicMock()
    launcher = K8sRunLauncher(**launcher_config(kubeconfig), k8s_client_batch_api=batch)
    launcher.register_instance(instance)
    run = create_run_for_test(instance, job_name=job_name, job_code_origin=_origin(job_name))
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return _created_job(batch)


def step_pod(defs, instance, job_name: str, step_key: str) -> dict:
    """The Job ``k8s_job_executor`` creates for step ``step_key`` of a run of ``job_name``."""
    job = defs.resolve_job_def(job_name)
    assert job.executor_def.name == "k8s_job_executor"
    executor_config = ResolvedRunConfig.build(job, {}).execution.execution_engine_config
    executor = job.executor_def.executor_creation_fn(InitExecutorContext(
        job=InMemoryJob(job), executor_def=job.executor_def, executor_config=executor_config, instance=instance))
    batch = mock.MagicMock()
    handler = executor._step_handler  # noqa: SLF001 - the executor's own step handler
    handler._api_client = DagsterKubernetesClient(  # noqa: SLF001 - what it sends, caught here
        batch_api=batch, core_api=mock.MagicMock(), logger=mock.MagicMock(), sleeper=lambda _: None, timer=lambda: 0)
    run = create_run_for_test(instance, job_name=job_name, job_code_origin=_origin(job_name))
    plan = create_execution_plan(job)
    context = StepHandlerContext(
        instance=instance,
        plan_context=PlanOrchestrationContext(
            plan_data=PlanData(job=InMemoryJob(job), dagster_run=run, instance=instance, execution_plan=plan,
                               raise_on_error=True, retry_mode=RetryMode.DISABLED),
            log_manager=create_context_free_log_manager(instance, run),
            executor=executor,
            output_capture=None,
        ),
        steps=plan.steps,
        execute_step_args=ExecuteStepArgs(_origin(job_name), run.run_id, [step_key]),
    )
    list(handler.launch_step(context))
    return _created_job(batch)


def _created_job(batch) -> dict:
    (call,) = [c for c in batch.method_calls if c[0] == "create_namespaced_job"]
    return kubernetes.client.ApiClient().sanitize_for_serialization(call.kwargs["body"])


def _container(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def _valid(job: dict) -> dict:
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(job, version, strict=True)
    return job


def test_gpu_step_asks_for_one_gpu_with_a_toleration_and_the_run_pod_for_none(k8s):
    defs, instance, kubeconfig = k8s
    training = _valid(step_pod(defs, instance, "train_model_job", "trained_model"))
    resources = _container(training)["resources"]
    assert resources["limits"][GPU_RESOURCE] == "1" and resources["requests"][GPU_RESOURCE] == "1"
    assert {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"} in \
        training["spec"]["template"]["spec"]["tolerations"]
    assert resources["requests"]["memory"] == "16Gi"  # the default for training, over the run pod's 1Gi

    run = _valid(run_pod(defs, instance, kubeconfig, "train_model_job"))
    run_resources = _container(run).get("resources") or {}
    assert GPU_RESOURCE not in str(run_resources) and "tolerations" not in run["spec"]["template"]["spec"]
    assert run_resources["requests"]["cpu"] == "250m"  # the values' runK8sConfig

    # every pod mounts the project at the same path and knows where it is and where MLflow is
    for job in (training, run):
        mounts = {m["name"]: m["mountPath"] for m in _container(job)["volumeMounts"]}
        assert mounts["songexplorer-project"] == "/lab"
        claims = [v["persistentVolumeClaim"]["claimName"] for v in job["spec"]["template"]["spec"]["volumes"]
                  if "persistentVolumeClaim" in v]
        assert claims == ["songexplorer-project"]  # once, though both the chart's places name it
        env = {e["name"]: e.get("value") for e in _container(job)["env"]}
        assert env[PROJECT_ENV] == "/lab/songexplorer-project" and env[EXECUTOR_ENV] == "k8s"
        assert env["MLFLOW_TRACKING_URI"] == "http://songexplorer-mlflow:5000"
        assert _container(job)["image"] == IMAGE


def test_cpu_steps_carry_the_configured_cpu_and_memory_and_no_gpu(k8s):
    defs, instance, _ = k8s
    # detections as automation and sensors run it: the implicit asset job
    detections = _valid(step_pod(defs, instance, "__ASSET_JOB", "detections"))
    resources = _container(detections)["resources"]
    assert resources["requests"]["cpu"] == "3" and resources["requests"]["memory"] == "6Gi"
    assert resources["limits"]["memory"] == "6Gi" and "cpu" not in resources["limits"]
    assert GPU_RESOURCE not in str(resources) and "tolerations" not in detections["spec"]["template"]["spec"]
    # classification set to the CPU by the project: no GPU, its own cores, default memory
    probabilities = _valid(step_pod(defs, instance, "__ASSET_JOB", "probabilities"))
    resources = _container(probabilities)["resources"]
    assert GPU_RESOURCE not in str(resources) and resources["requests"]["cpu"] == "8"
    assert resources["requests"]["memory"] == "8Gi"


def test_a_step_without_settings_gets_the_run_pods_requests(k8s):
    defs, instance, _ = k8s
    recordings = _valid(step_pod(defs, instance, "__ASSET_JOB", "recordings"))
    assert _container(recordings)["resources"]["requests"] == {"cpu": "250m", "memory": "1Gi"}


def test_every_gpu_pool_step_asks_for_a_gpu_by_default_and_only_those(tmp_path):
    project = init_project(tmp_path / "p", settings=ProjectSettings())
    settings = read_compute_settings(project)
    from songexplorer_dagster.definitions import defs

    graph = defs.resolve_asset_graph()
    in_pool = {key.to_user_string() for key in graph.get_all_asset_keys() if GPU_POOL in graph.get(key).pools}
    asks = {name for name, step in settings.steps.items() if step.ngpu_cards}
    assert asks == in_pool and {"trained_model", "probabilities"} <= asks


def test_jobs_that_name_their_executor_switch_too_and_local_runs_are_unchanged(tmp_path):
    code = ("from songexplorer_dagster.definitions import defs\n"
            "print(*[defs.resolve_job_def(j).executor_def.name for j in ('detect_recordings_job', "
            "'find_misses_job', 'train_model_job')], defs.resolve_implicit_global_asset_job_def().executor_def.name)")
    env = {k: v for k, v in os.environ.items() if k != EXECUTOR_ENV} | {PROJECT_ENV: str(tmp_path)}
    local = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert local.stdout.split() == ["in_process", "in_process", "multiprocess_forkserver",
                                    "multiprocess_forkserver"], local.stderr
    k8s = subprocess.run([sys.executable, "-c", code], env=env | {EXECUTOR_ENV: "k8s"}, capture_output=True,
                         text=True, timeout=120)
    assert k8s.stdout.split() == ["k8s_job_executor"] * 4, k8s.stderr


@pytest.mark.parametrize("text, message", [
    ("[resources.detections]\nncpu_cores = 0\n", "ncpu_cores must be a number of cores > 0"),
    ("[resources.detections]\nngpu_cards = 1.5\n", "ngpu_cards must be a whole number"),
    ("[resources.detections]\nngigabytes = 4\n", "unknown setting(s) ['ngigabytes']"),
    ("[resources.gpu_nodes]\ntolerations = 1\n", "tolerations must be a list of tables"),
    ("resources = 3\n", "resources must be a table"),
])
def test_bad_resources_fail_with_one_line_naming_the_setting(tmp_path, text, message):
    project = init_project(tmp_path / "p", settings=ProjectSettings())
    with project.settings_path.open("a") as handle:
        handle.write(text)
    with pytest.raises(ProjectError, match=re.escape(message)):
        read_compute_settings(project)
    project.settings()  # core still reads the rest of the file


def test_a_resources_table_naming_no_asset_is_refused_when_the_switch_is_on(tmp_path, monkeypatch):
    project = init_project(tmp_path / "p", settings=ProjectSettings())
    with project.settings_path.open("a") as handle:
        handle.write("[resources.detection]\nncpu_cores = 2\n")
    monkeypatch.setenv(PROJECT_ENV, str(project.root))
    monkeypatch.setenv(EXECUTOR_ENV, "k8s")
    with pytest.raises(ProjectError, match=r"names no asset \['detection'\]"):
        compute_resources.with_step_executor(dg.load_from_defs_folder(path_within_project=REPO / "songexplorer_dagster"))
    monkeypatch.setenv(EXECUTOR_ENV, "kubernetes")
    with pytest.raises(ProjectError, match="must be one of local, k8s"):
        compute_resources.executor_setting()


def test_gpu_nodes_and_minus_one_as_songexplorer_writes_it(tmp_path):
    project = init_project(tmp_path / "p", settings=ProjectSettings())
    with project.settings_path.open("a") as handle:
        handle.write('[resources.trained_model]\nngigabytes_memory = -1\nncpu_cores = 0.5\n'
                     '[resources.gpu_nodes]\ntolerations = [{ key = "gpu", operator = "Equal", value = "a100", '
                     'effect = "NoSchedule" }]\nnode_selector = { accelerator = "a100" }\n')
    config = read_compute_settings(project).per_step_k8s_config()["trained_model"]
    assert config["container_config"]["resources"] == {
        "requests": {"cpu": "500m", GPU_RESOURCE: "1"}, "limits": {GPU_RESOURCE: "1"}}
    assert config["pod_spec_config"] == {
        "tolerations": [{"key": "gpu", "operator": "Equal", "value": "a100", "effect": "NoSchedule"}],
        "node_selector": {"accelerator": "a100"}}


# -- the deploy/ files themselves ---------------------------------------------------------------

#: Keys the Dagster chart's values schema allows where these values set them (the chart's
#: helm/dagster/schema models: K8sRunLauncherConfig, RunK8sConfig, UserDeployment, PostgreSQL).
CHART_KEYS = {
    "k8sRunLauncher": {"image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
                       "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
                       "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig"},
    "runK8sConfig": {"containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata"},
    "deployment": {"name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "port",
                   "env", "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity", "tolerations",
                   "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe",
                   "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName"},
    "postgresql": {"image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
                   "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service"},
}


def test_helm_values_use_the_charts_keys_and_give_the_code_what_it_needs():
    launcher = VALUES["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    config = launcher["config"]["k8sRunLauncher"]
    assert set(config) <= CHART_KEYS["k8sRunLauncher"]
    assert set(config["runK8sConfig"]) <= CHART_KEYS["runK8sConfig"]
    assert set(DEPLOYMENT) <= CHART_KEYS["deployment"]
    assert set(VALUES["postgresql"]) <= CHART_KEYS["postgresql"]
    # the code location is this package's definitions
    assert VALUES["dagster-user-deployments"]["enabled"] and DEPLOYMENT["includeConfigInLaunchedRuns"]["enabled"]
    assert DEPLOYMENT["dagsterApiGrpcArgs"] == ["-m", "songexplorer_dagster.definitions"]
    # an external Postgres reached through psycopg2 (SQLAlchemy 2.1 maps postgresql:// to psycopg 3)
    assert VALUES["postgresql"]["enabled"] is False and VALUES["postgresql"]["postgresqlHost"]
    assert VALUES["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    # the project volume: ReadWriteMany, at one path in the code server and in every launched pod
    claim = yaml.safe_load((REPO / "deploy" / "project-volume.yaml").read_text())
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for place in (DEPLOYMENT, config):
        (volume,) = place["volumes"]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert place["volumeMounts"] == [{"name": volume["name"], "mountPath": "/lab"}]
    env = {e["name"]: e["value"] for e in DEPLOYMENT["env"]}
    assert env[PROJECT_ENV].startswith("/lab/") and env[EXECUTOR_ENV] == "k8s"
    mlflow = {doc["kind"]: doc for doc in yaml.safe_load_all((REPO / "deploy" / "mlflow.yaml").read_text())}
    service = mlflow["Service"]
    assert env["MLFLOW_TRACKING_URI"] == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"


def test_mlflow_server_and_volume_manifests_pass_the_strict_schemas():
    documents = [*yaml.safe_load_all((REPO / "deploy" / "mlflow.yaml").read_text()),
                 yaml.safe_load((REPO / "deploy" / "project-volume.yaml").read_text())]
    assert [d["kind"] for d in documents] == ["PersistentVolumeClaim", "Deployment", "Service", "PersistentVolumeClaim"]
    for document in documents:
        _valid(document)
    (container,) = documents[1]["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert "--serve-artifacts" in args  # pods need only MLFLOW_TRACKING_URI
    assert any(a.startswith("--backend-store-uri=postgresql+psycopg2://") for a in args)
    hosts = next(a for a in args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert documents[2]["metadata"]["name"] in hosts  # the name pods use in their Host header
