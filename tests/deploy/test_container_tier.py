"""Container tier: the project's image, built from deploy/Dockerfile on a debootstrap'd Debian
base (scripts/deploy/build-image.sh) under a private dockerd (host network only), runs a training
job with Dagster's own step-per-container executor (dagster-docker's ``docker_executor``) against
the session's PostgreSQL (deploy/dagster-postgres.yaml) and MLflow server.

Each step runs in its own container as the image's non-root user, with the project folder and the
instance's home mounted at the same path; the run itself runs here. Every container is removed and
the daemon stopped by its pid afterwards. Slow (the cold path builds the base image and installs
TensorFlow into the image): see docs/deploy.md, Tested here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance

from deploy_test_helpers import ROOT, SCRIPTS, postgres_dagster_home, stop_pid, unavailable
from songexplorer_core.demo import make_demo_project
from songexplorer_core.project import find_recordings

pytestmark = [pytest.mark.container, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
IMAGE = "songexplorer:container-tier"
#: the image's user (deploy/Dockerfile, ARG UID)
IMAGE_UID = 1000
TINY_TRAINING = {"recipe": "tutorial", "nsteps": 4, "validate_period": 2, "validate_percentage": 30.0,
                 "mini_batch": 8}


@pytest.fixture(scope="session")
def dockerd(request):
    """A private dockerd (scripts/deploy/dockerd.sh): ``DOCKER_HOST`` for clients; at the end every
    container it ran is removed and the daemon is stopped by its pid."""
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        unavailable("dockerd/docker not found (apt-get install docker.io; scripts/setup.sh does)")
    folder = Path(tempfile.mkdtemp(prefix="songexplorer-docker-", dir="/tmp"))
    out = subprocess.run(["bash", str(SCRIPTS / "dockerd.sh"), "start", str(folder)], capture_output=True,
                         text=True, timeout=120)
    if out.returncode != 0:
        unavailable(f"dockerd did not start:\n{out.stdout}\n{out.stderr}")
    pid = int(out.stdout.split()[-1])
    host = f"unix://{folder}/docker.sock"

    def stop():
        env = {**os.environ, "DOCKER_HOST": host}
        ids = subprocess.run(["docker", "ps", "-aq"], env=env, capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], env=env, capture_output=True, timeout=120)
        subprocess.run(["bash", str(SCRIPTS / "dockerd.sh"), "stop", str(folder)], capture_output=True, timeout=120)
        stop_pid(pid)
        shutil.rmtree(folder, ignore_errors=True)

    request.addfinalizer(stop)
    return host


@pytest.fixture(scope="session")
def project_image(dockerd):
    """The project's image, built by scripts/deploy/build-image.sh; wall seconds of the build."""
    env = {**os.environ, "DOCKER_HOST": dockerd, "PYTHON": sys.executable}
    started = time.monotonic()
    out = subprocess.run(["bash", str(SCRIPTS / "build-image.sh"), IMAGE], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=1200)
    assert out.returncode == 0, f"image build failed:\n{out.stdout[-4000:]}\n{out.stderr[-6000:]}"
    return time.monotonic() - started


def run(command, env, cwd, timeout_s=900):
    out = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    assert out.returncode == 0, f"{command} exited {out.returncode}:\n{out.stdout[-6000:]}\n{out.stderr[-6000:]}"
    return out.stdout


def open_to_the_image_user(folder: Path) -> None:
    """Let the image's non-root user write the shared folder the host created (a lab would make the
    project folder's owner and the image's user the same instead)."""
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o777 if path.is_dir() else path.stat().st_mode | 0o666)


def test_a_training_job_runs_step_per_container_against_postgres_and_mlflow(postgres, mlflow_server, dockerd,
                                                                             project_image, monkeypatch):
    import docker

    # project and instance home in one folder, mounted at the same path in every step container
    shared = Path(tempfile.mkdtemp(prefix="songexplorer-shared-", dir="/tmp"))
    try:
        project = make_demo_project(shared / "project", nrecordings=2, duration_s=60.0)
        keys = sorted(find_recordings(project.groundtruth))
        db = postgres.createdb("containers")
        home = postgres_dagster_home(shared / "dagster_home")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
        env.update(postgres.env(db), DAGSTER_HOME=str(home), SONGEXPLORER_PROJECT=str(project.root),
                   DOCKER_HOST=dockerd, TF_CPP_MIN_LOG_LEVEL="2")
        for key, value in postgres.env(db).items():
            monkeypatch.setenv(key, value)
        with DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions("recordings", keys)
            assert instance.event_log_storage.initialize_concurrency_limit_to_default("gpu")

        # the training's inputs, here (in-process runs): each recording's annotations, the ground truth
        materialize = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "songexplorer_dagster.definitions"]
        for key in keys:
            run([*materialize, "--select", "annotations", "--partition", key], env, shared)
        run([*materialize, "--select", "ground_truth"], env, shared)
        open_to_the_image_user(shared)

        run_config = {
            "execution": {"config": {
                "image": IMAGE,
                "env_vars": [f"{k}={v}" for k, v in {**postgres.env(db), "DAGSTER_HOME": str(home),
                                                     "SONGEXPLORER_PROJECT": str(project.root)}.items()],
                "container_kwargs": {
                    "network_mode": "host",
                    "volumes": {str(shared): {"bind": str(shared), "mode": "rw"},
                                str(HERE): {"bind": str(HERE), "mode": "ro"}},
                },
            }},
            "resources": {"mlflow": {"config": {"tracking_uri": mlflow_server.url,
                                                "experiment": "containers", "registered_model": "containers"}}},
            "ops": {"trained_model": {"config": TINY_TRAINING}},
        }
        (shared / "run_config.yaml").write_text(yaml.safe_dump(run_config))
        started = time.monotonic()
        run([sys.executable, "-m", "dagster", "job", "execute", "-f", str(HERE / "docker_job.py"), "-a", "defs",
             "-j", "train_in_containers_job", "-c", str(shared / "run_config.yaml")], env, shared, timeout_s=1200)
        run_s = time.monotonic() - started

        with DagsterInstance.from_config(str(home)) as instance:
            (record,) = [r for r in instance.get_run_records()
                         if r.dagster_run.job_name == "train_in_containers_job"]
            assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
            run_id = record.dagster_run.run_id
            launched = [entry for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_WORKER_STARTING)]
            assert sorted(entry.step_key for entry in launched) == ["accuracy_report", "trained_model"]
            assert all("Docker container" in entry.message for entry in launched)
            materialised = instance.fetch_materializations(dg.AssetKey("trained_model"), limit=10).records
            assert [m.run_id for m in materialised] == [run_id]

        # one container per step, from the project's image, each exited 0
        client = docker.DockerClient(base_url=dockerd)
        try:
            containers = client.containers.list(all=True, filters={"name": "dagster-step-"})
            assert len(containers) == 2, [c.name for c in containers]
            for container in containers:
                assert container.attrs["State"]["ExitCode"] == 0, container.logs()[-3000:]
                assert IMAGE in container.image.tags
                container.remove(force=True)
        finally:
            client.close()

        # the containers wrote the model into the shared project as the image's user ...
        written = [p for p in project.outputs.rglob("*") if p.is_file() and p.stat().st_uid == IMAGE_UID]
        assert written, "no file in outputs/ was written by the image's user"
        # ... and registered it on the MLflow server (artifacts proxied: the step had only the URI)
        from songexplorer_core.tracking import TrackingConfig, champion_version

        config = TrackingConfig(tracking_uri=mlflow_server.url, experiment="containers",
                                registered_model="containers")
        assert champion_version(config).version == "1"
        print(f"container tier: image built in {project_image:.0f} s, training run of 2 step containers "
              f"in {run_s:.0f} s")
    finally:
        shutil.rmtree(shared, ignore_errors=True)
