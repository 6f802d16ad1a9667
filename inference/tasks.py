import logging

from celery.signals import worker_process_init
from django.conf import settings

from taskqueue.decorators import medportal_task

logger = logging.getLogger(__name__)


@medportal_task()
def prediction_run(*, prediction_id: str) -> int:
    """Run the AI on this prediction (and any others of its model waiting in the queue)."""
    from inference.runtime import run_batch

    return run_batch(prediction_id=prediction_id)


@medportal_task()
def prediction_heatmaps(*, prediction_ids: list[str]) -> int:
    """Store the Grad-CAM heatmaps of these succeeded predictions (sent after their second opinions)."""
    from inference.runtime import run_heatmaps

    return run_heatmaps(prediction_ids=prediction_ids)


@medportal_task(time_limit=120)
def predictions_sweep() -> dict[str, int]:
    """Resend lost tasks and recover predictions from dead workers."""
    from inference.services import predictions_sweep as sweep

    return sweep()


@worker_process_init.connect
def warm_models_in_pool_process(**kwargs) -> None:
    """Load the models of this worker's queues before the pool process takes its first job.

    Runs in each pool process after the fork, so TensorFlow never starts in the parent.
    """
    if not settings.MEDPORTAL_WARM_MODELS:
        return
    from celery import current_app

    consumed = current_app.amqp.queues.consume_from or {}
    queues = list(consumed) if consumed else None
    try:
        from inference.runtime import warm_models

        warm_models(queues=queues)
    except Exception:
        # A worker that cannot warm up still serves: models then load on first use.
        logger.warning("Warming models failed", exc_info=True)
    finally:
        # The pool process must not carry a connection opened before its first task.
        from django.db import connections

        connections.close_all()
