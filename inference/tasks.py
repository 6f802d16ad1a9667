import logging

from celery import current_app
from celery.signals import worker_process_init
from django.conf import settings
from django.db import connections

from inference.claims import predictions_recover
from inference.dispatch import Outbox, outbox_send
from inference.runtime import run_batch, run_heatmaps, warm_models
from taskqueue.decorators import medportal_task

logger = logging.getLogger(__name__)


@medportal_task()
def prediction_run(*, prediction_id: str) -> int:
    """Run the AI on this prediction (and any others of its model waiting in the queue)."""
    outbox = Outbox()
    try:
        return run_batch(prediction_id=prediction_id, outbox=outbox)
    finally:
        # Heatmaps of the results written, and work given back, are sent even if a later batch failed.
        outbox_send(outbox)


@medportal_task()
def prediction_heatmaps(*, prediction_ids: list[str]) -> int:
    """Store the Grad-CAM heatmaps of these succeeded predictions (sent after their second opinions)."""
    return run_heatmaps(prediction_ids=prediction_ids)


def sweep(*, now=None) -> dict[str, int]:
    """Recover lost and abandoned work, send it again and say how much there was."""
    recovery = predictions_recover(now=now)
    sent = outbox_send(recovery.outbox)
    return {
        "resent": sent.predictions,
        "requeued": recovery.requeued,
        "failed": recovery.failed,
        "heatmaps": sent.heatmaps,
    }


@medportal_task(time_limit=120)
def predictions_sweep() -> dict[str, int]:
    """Resend lost tasks and recover predictions from dead workers."""
    return sweep()


@worker_process_init.connect
def warm_models_in_pool_process(**kwargs) -> None:
    """Load the models of this worker's queues before the pool process takes its first job.

    Runs in each pool process after the fork, so TensorFlow never starts in the parent.
    """
    if not settings.MEDPORTAL_WARM_MODELS:
        return
    consumed = current_app.amqp.queues.consume_from or {}
    queues = list(consumed) if consumed else None
    try:
        warm_models(queues=queues)
    except Exception:
        # A worker that cannot warm up still serves: models then load on first use.
        logger.warning("Warming models failed", exc_info=True)
    finally:
        # The pool process must not carry a connection opened before its first task.
        connections.close_all()
