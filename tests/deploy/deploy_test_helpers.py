"""Starting and stopping the servers the service and container tiers need (tests/deploy/).

Every server binds 127.0.0.1 at a free port, keeps its files in its own temporary folder, and is
stopped by its pid by whoever started it (the session fixtures in ``conftest.py``). The scripts
under ``scripts/deploy/`` do the starting, so a person can start the same servers by hand.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "deploy"
DEPLOY = ROOT / "deploy"
#: scripts/test.sh sets it: the tiers' servers must start (a missing binary fails instead of skipping).
REQUIRED_ENV = "SONGEXPLORER_DEPLOY_TIERS_REQUIRED"


def unavailable(reason: str):
    """Fail when CI requires the deploy tiers, else skip with ``reason``."""
    if os.environ.get(REQUIRED_ENV) == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not reaped by its parent) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM ``pid``, then SIGKILL after ``timeout_s`` seconds if it is still there."""
    if not alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def wait_for_http(url: str, timeout_s: float, process: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited ({process.returncode}):\n{log.read_text() if log else ''}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s:\n{log.read_text() if log else ''}")


@dataclass
class Postgres:
    """A PostgreSQL server started by ``scripts/deploy/postgres.sh`` (user ``postgres``, trusted)."""

    folder: Path
    port: int
    pid: int
    host: str = "127.0.0.1"
    user: str = "postgres"

    @classmethod
    def start(cls) -> "Postgres":
        if shutil.which("runuser") is None and os.getuid() == 0:
            unavailable("runuser not found")
        if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and shutil.which("pg_config") is None:
            unavailable("PostgreSQL server binaries not found (apt-get install postgresql; scripts/setup.sh does)")
        # directly under /tmp: as root the server runs as `postgres`, which must reach the folder
        folder = Path(tempfile.mkdtemp(prefix="songexplorer-pg-", dir="/tmp"))
        port = free_port()
        out = subprocess.run(["bash", str(SCRIPTS / "postgres.sh"), "start", str(folder), str(port)],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError(f"PostgreSQL did not start:\n{out.stdout}\n{out.stderr}")
        return cls(folder=folder, port=port, pid=int(out.stdout.split()[-1]))

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPTS / "postgres.sh"), "stop", str(self.folder)], capture_output=True,
                       timeout=90)
        stop_pid(self.pid)
        shutil.rmtree(self.folder, ignore_errors=True)

    def createdb(self, name: str) -> str:
        subprocess.run(["bash", str(SCRIPTS / "postgres.sh"), "createdb", str(self.folder), str(self.port), name],
                       check=True, capture_output=True, timeout=60)
        return name

    def url(self, db: str) -> str:
        """SQLAlchemy URL with the psycopg2 driver (what Dagster's ``scheme`` and MLflow need)."""
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{db}"

    def env(self, db: str) -> dict[str, str]:
        """The ``DAGSTER_PG_*`` variables ``deploy/dagster-postgres.yaml`` reads."""
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_DB": db,
                "DAGSTER_PG_USERNAME": self.user, "DAGSTER_PG_PASSWORD": ""}


def postgres_dagster_home(home: Path, gpu_limit: int | None = None) -> Path:
    """``home`` holding deploy/dagster-postgres.yaml as its dagster.yaml; ``gpu_limit`` sets the
    pools' default limit (the number of GPUs)."""
    home.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((DEPLOY / "dagster-postgres.yaml").read_text())
    if gpu_limit is not None:
        config["concurrency"]["pools"]["default_limit"] = gpu_limit
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return home


@dataclass
class MlflowServer:
    """``mlflow server`` on 127.0.0.1: backend store in Postgres, artifacts proxied (``--serve-artifacts``)
    from a local folder, so clients need only the tracking URI."""

    url: str
    artifacts: Path
    process: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, postgres: Postgres, folder: Path) -> "MlflowServer":
        postgres.createdb("mlflow")
        port = free_port()
        artifacts = folder / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        log = folder / "mlflow-server.log"
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                   "--backend-store-uri", postgres.url("mlflow"), "--serve-artifacts",
                   "--artifacts-destination", str(artifacts), "--workers", "1"]
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=folder,
                                       start_new_session=True)
        server = cls(url=f"http://127.0.0.1:{port}", artifacts=artifacts, process=process, log=log)
        try:
            wait_for_http(f"{server.url}/health", 180, process, log)
        except Exception:
            server.stop()
            raise
        return server

    def stop(self) -> None:
        # the server's own process group (uvicorn/gunicorn workers included), by its pid
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
