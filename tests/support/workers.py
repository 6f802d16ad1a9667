"""Real Celery worker processes for tests: started, watched and stopped like in production."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen
    log_path: Path
    _log: object = field(repr=False, default=None)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def is_running(self) -> bool:
        return self.process.poll() is None

    def child_pids(self) -> list[int]:
        """Pids of the pool processes (the ones that run tasks)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if not children.exists():
            return []
        return [int(pid) for pid in children.read_text().split()]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the whole worker (parent and pool children), as a crash would."""
        pids = [*self.child_pids(), self.process.pid]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30) -> None:
        if self.is_running():
            self.process.send_signal(signal.SIGTERM)  # warm shutdown: finish the task in hand
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()


def start_worker(
    *,
    queues: list[str] | None = None,
    concurrency: int = 1,
    extra_env: dict[str, str] | None = None,
    ready_timeout: float = 120,
) -> WorkerProcess:
    """Start ``celery worker`` on the test database and queues and wait until it is ready."""
    name = f"w{uuid.uuid4().hex[:8]}"
    log_path = Path(settings.RUN_DIR) / f"worker-{name}.log"
    log = open(log_path, "w")  # noqa: SIM115 - kept open for the process's lifetime
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "medportal.settings.test",
        "MEDPORTAL_WORKER_USE_TEST_DB": "1",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    queues = queues or [settings.MEDPORTAL_GPU_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE]
    command = [
        sys.executable, "-m", "celery", "-A", "medportal", "worker",
        "--loglevel", "INFO", "--pool", "prefork", "--concurrency", str(concurrency),
        "--hostname", f"{name}@%h", "--queues", ",".join(queues),
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    worker = WorkerProcess(name=name, process=process, log_path=log_path, _log=log)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if not worker.is_running():
            raise RuntimeError(f"The Celery worker exited with {process.returncode}:\n{worker.log()[-4000:]}")
        if " ready." in worker.log():
            return worker
        time.sleep(0.2)
    worker.stop()
    raise RuntimeError(f"The Celery worker was not ready in {ready_timeout}s:\n{worker.log()[-4000:]}")


def wait_for(predicate: Callable[[], object], *, timeout: float = 180, interval: float = 0.25, message: str = ""):
    """Poll until ``predicate()`` is truthy; return its value or fail with ``message``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"Condition not met within {timeout}s")
        time.sleep(interval)
