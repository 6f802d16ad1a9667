"""The application's own processes (gunicorn, Celery workers, manage.py) for one stack."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from stack import PYTHON, REPO_ROOT
from stack.polling import wait_until
from stack.servers import free_port


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
        [PYTHON, "-m", "stack.seed"],
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

    try:
        wait_until(ready, timeout=60, interval=0.2, message="gunicorn answering")
    except BaseException:
        web.stop(timeout=10)
        raise
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

    try:
        wait_until(ready, timeout=timeout, interval=0.2, message=f"worker {name} ready")
    except BaseException as exc:
        # Not left running (and loading models) behind the caller's back; its log says how far it got.
        worker.stop(timeout=10)
        if isinstance(exc, TimeoutError):
            raise TimeoutError(f"{exc}:\n{worker.log()[-3000:]}") from exc
        raise
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
