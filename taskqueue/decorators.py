"""The one way this project declares Celery tasks.

Every task acknowledges only after it finished (acks_late) and is handed back
to the broker if its worker process dies, so no job is lost; every task has
time limits and retries database hiccups with backoff. Tasks take ids, never
model instances, and are safe to run twice.
"""

from collections.abc import Callable

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, ConnectionError)


def medportal_task(*, time_limit: int | None = None, max_retries: int = 8) -> Callable:
    """Declare a task; its queue comes from ``route_task`` (or the caller, for per-model queues)."""
    hard_limit = time_limit or settings.MEDPORTAL_TASK_TIME_LIMIT

    def decorator(func: Callable) -> Callable:
        return shared_task(
            name=f"{func.__module__}.{func.__name__}",
            acks_late=True,
            reject_on_worker_lost=True,
            time_limit=hard_limit,
            soft_time_limit=max(hard_limit - 15, int(hard_limit * 0.9)),
            autoretry_for=TRANSIENT_ERRORS,
            retry_backoff=2,
            retry_backoff_max=60,
            retry_jitter=True,
            max_retries=max_retries,
        )(func)

    return decorator
