"""Real processes for the benchmark and the fault tests: PostgreSQL, Redis, gunicorn and Celery workers.

The fault tests start private PostgreSQL and Redis servers on free loopback ports (they stop,
flush and restart them); the benchmark points the same web and worker processes at the
machine's own servers. Every process here is started and stopped by its own pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


class MissingBinary(RuntimeError):
    """A server binary this needs is not installed."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, *, timeout: float, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} not met within {timeout}s")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


# --- PostgreSQL ------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return candidates[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise MissingBinary("PostgreSQL's initdb and pg_ctl are not installed.")


class PrivatePostgres:
    """A throwaway PostgreSQL cluster in a temporary directory, on a free loopback port (trust auth)."""

    @staticmethod
    def check_binaries() -> None:
        bindir = postgres_bindir()
        if not (bindir / "pg_ctl").exists():
            raise MissingBinary(f"pg_ctl is missing from {bindir}.")
        if os.geteuid() == 0 and not shutil.which("runuser"):
            raise MissingBinary("runuser is needed to run PostgreSQL as the postgres user.")

    def __init__(self, root: Path):
        self.bindir = postgres_bindir()
        self.port = free_port()
        self.root = Path(root)
        self.data = self.root / "pgdata"
        self.logfile = self.root / "postgres.log"

    def _run_as_owner(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root.
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if check and result.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return result

    def init(self) -> PrivatePostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(mode=0o700)
        if os.geteuid() == 0:
            for directory in (self.root.parent, self.root):
                # The postgres user must be able to reach its data directory.
                mode = directory.stat().st_mode
                if not mode & 0o001:
                    directory.chmod(mode | 0o005)
            shutil.chown(self.data, "postgres", "postgres")
            self.logfile.touch()
            shutil.chown(self.logfile, "postgres", "postgres")
        self._run_as_owner("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        self._run_as_owner("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run_as_owner("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def url(self, database: str = "medportal") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str = "medportal") -> None:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()


def sql(url: str, query: str, params=()) -> list[tuple]:
    """Run one query on a database by URL (a fresh connection: the server may just have restarted)."""
    import psycopg2

    connection = psycopg2.connect(url, connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query, params)
            rows = cursor.fetchall() if cursor.description else []
        connection.commit()
        return rows
    finally:
        connection.close()


# --- Redis -----------------------------------------------------------------------------------


class PrivateRedis:
    """A throwaway Redis with no persistence: a restart comes back empty, like the machine's."""

    @staticmethod
    def check_binaries() -> None:
        if not shutil.which("redis-server"):
            raise MissingBinary("redis-server is not installed.")

    def __init__(self, root: Path):
        self.check_binaries()
        self.port = free_port()
        self.root = Path(root)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "redis.log", "a")  # noqa: SIM115 - owned by the server process
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(lambda: port_open(self.port), timeout=20, message="redis-server accepting connections")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=2)

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


# --- The application's processes -------------------------------------------------------------


def app_env(*, database_url: str, broker_url: str, root: Path, **extra: str) -> dict[str, str]:
    """Environment for web and worker processes of one stack (production-like settings, loopback only)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MEDPORTAL_", "DJANGO_", "CELERY_")) and key not in ("DATABASE_URL",)
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "medportal.settings.local",
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "DJANGO_MEDIA_ROOT": str(root / "media"),
            "MEDPORTAL_MODEL_CACHE_DIR": str(root / "model-cache"),
            "MEDPORTAL_API_TOKEN_RATE": "1000000/min",
            "PYTHONUNBUFFERED": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def seed(env: dict[str, str], *, models: list[dict]) -> dict:
    """Create a staff user with an API token, a patient, and register the given models."""
    result = subprocess.run(
        [PYTHON, "-m", "bench.seed"],
        cwd=REPO_ROOT,
        env=env,
        input=json.dumps({"models": models}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode:
        raise RuntimeError(f"Seeding failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@dataclass
class Process:
    name: str
    process: subprocess.Popen
    log_path: Path
    _log: object = field(repr=False, default=None)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def is_running(self) -> bool:
        return self.process.poll() is None

    def child_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if not children.exists():
            return []
        return [int(pid) for pid in children.read_text().split()]

    def kill(self) -> None:
        """SIGKILL the process and its children at once, as a crash or the OOM killer would."""
        for pid in [*self.child_pids(), self.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._close()

    def stop(self, timeout: float = 30) -> None:
        if self.is_running():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()

    def _close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def _spawn(name: str, command: list[str], env: dict[str, str], root: Path) -> Process:
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / f"{name}.log"
    log = open(log_path, "w")  # noqa: SIM115 - kept open for the process's lifetime
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Process(name=name, process=process, log_path=log_path, _log=log)


def start_gunicorn(env: dict[str, str], root: Path, *, workers: int = 2, threads: int = 1) -> tuple[Process, str]:
    port = free_port()
    command = [
        PYTHON, "-m", "gunicorn", "medportal.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--threads", str(threads), "--timeout", "60", "--graceful-timeout", "5",
    ]  # fmt: skip
    web = _spawn(f"gunicorn-{port}", command, env, root)
    base = f"http://127.0.0.1:{port}"

    def ready():
        if not web.is_running():
            raise RuntimeError(f"gunicorn exited:\n{web.log()[-3000:]}")
        try:
            urllib.request.urlopen(f"{base}/api/v1/patients/", timeout=2)  # noqa: S310 - loopback
        except urllib.error.HTTPError:
            return True  # 401: the app answers
        except OSError:
            return False
        return True

    wait_until(ready, timeout=60, interval=0.2, message="gunicorn answering")
    return web, base


def start_worker(
    env: dict[str, str],
    root: Path,
    *,
    name: str,
    queues: list[str],
    concurrency: int = 1,
    beat: bool = False,
    warm_models: int = 0,
    timeout: float = 120,
) -> Process:
    """A real ``celery worker``; waits until it is ready and, if asked, until its pool warmed its models."""
    command = [
        PYTHON, "-m", "celery", "-A", "medportal", "worker", "--loglevel", "INFO", "--pool", "prefork",
        "--concurrency", str(concurrency), "--hostname", f"{name}@%h", "--queues", ",".join(queues),
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    if beat:
        command += ["--beat", "--schedule", str(root / f"{name}-beat-schedule")]
    worker = _spawn(name, command, env, root)

    def ready():
        if not worker.is_running():
            raise RuntimeError(f"The worker {name} exited:\n{worker.log()[-4000:]}")
        log = worker.log()
        if " ready." not in log:
            return False
        warmed = log.count("Warmed ")
        return warmed >= concurrency if warm_models else True

    wait_until(ready, timeout=timeout, interval=0.2, message=f"worker {name} ready")
    return worker


def succeeded_log_lines(*workers: Process) -> list[str]:
    """Prediction ids each worker logged as written (one line per successful write)."""
    ids = []
    for worker in workers:
        for line in worker.log().splitlines():
            if "Prediction " in line and " succeeded (claim " in line:
                ids.append(line.split("Prediction ", 1)[1].split(" ", 1)[0])
    return ids


def make_root(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


# --- Talking to the API ----------------------------------------------------------------------


def png_bytes(seed: int, size: int = 96) -> bytes:
    """A distinct, valid grayscale PNG (content-addressed storage would fold identical bytes into one image)."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size, size), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(files: list[tuple[str, bytes, str]]) -> tuple[bytes, str]:
    boundary = uuid_hex()
    body = b"".join(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
        for name, data, content_type in files
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def uuid_hex() -> str:
    import uuid

    return uuid.uuid4().hex


class Api:
    """A minimal HTTP client for the API on loopback (standard library only)."""

    def __init__(self, base: str, token: str):
        self.base = base
        self.token = token

    def request(self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None):
        import urllib.error

        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(f"{self.base}{path}", data=body, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback only
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode(errors="replace")
        return status, data

    def post_json(self, path: str, payload: dict):
        return self.request("POST", path, body=json.dumps(payload).encode(), content_type="application/json")

    def get(self, path: str):
        return self.request("GET", path)

    def create_study(self, *, patient: str, modality: str = "CR", body_part: str = "CHEST", **extra) -> str:
        status, data = self.post_json(
            "/api/v1/studies/",
            {
                "patient": patient,
                "accession_number": f"B-{uuid_hex()[:12]}",
                "modality": modality,
                "body_part": body_part,
                **extra,
            },
        )
        if status != 201:
            raise RuntimeError(f"Could not create a study: {status} {data}")
        return data["id"]

    def upload(self, study_id: str, files: list[tuple[str, bytes, str]]):
        body, content_type = multipart(files)
        return self.request("POST", f"/api/v1/studies/{study_id}/images/", body=body, content_type=content_type)
