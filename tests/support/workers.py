"""A real Celery worker process on this test run's database and queues.

The process handling itself (spawn, log, SIGKILL, warm shutdown) is `stack.processes`, which the
benchmark uses too, so the tests and the benchmark start workers the same way.
"""

import os
import uuid
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from stack.polling import wait_until
from stack.processes import Process
from stack.processes import start_worker as start_celery_worker


def start_worker(
    *,
    queues: list[str] | None = None,
    concurrency: int = 1,
    extra_env: dict[str, str] | None = None,
    ready_timeout: float = 300,
) -> Process:
    """Start ``celery worker`` on the test database and queues and wait until it is ready."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "medportal.settings.test",
        "MEDPORTAL_WORKER_USE_TEST_DB": "1",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    return start_celery_worker(
        env,
        Path(settings.RUN_DIR),
        name=f"w{uuid.uuid4().hex[:8]}",
        queues=queues or [settings.MEDPORTAL_GPU_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE],
        concurrency=concurrency,
        timeout=ready_timeout,
    )


def wait_for(predicate: Callable[[], object], *, timeout: float = 180, interval: float = 0.25, message: str = ""):
    """Poll until ``predicate()`` is truthy; return its value or fail the test with ``message``."""
    try:
        return wait_until(predicate, timeout=timeout, interval=interval, message=message or "condition")
    except TimeoutError as exc:
        raise AssertionError(message or str(exc)) from exc
