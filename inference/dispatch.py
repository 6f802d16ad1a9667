"""The one place that sends Celery tasks.

Everything else decides *what* must run and hands it here: the web side asks for its new
predictions' tasks once the upload commits; the worker side returns an ``Outbox`` that its
task sends after the work is done. A broker outage is logged, never raised: the rows stay
queued and the sweeper sends them again.
"""

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference.models import Prediction, PredictionStatus

logger = logging.getLogger(__name__)

# Looked up by name, so that the tasks module (which sends through here) and this one do not import each other.
PREDICTION_RUN = "inference.tasks.prediction_run"
PREDICTION_HEATMAPS = "inference.tasks.prediction_heatmaps"

Work = tuple[uuid.UUID, str]  # (prediction id, the queue of its model)


@dataclass
class Outbox:
    """Tasks to send: second opinions to run and heatmaps to draw, each with its model's queue."""

    predictions: list[Work] = field(default_factory=list)
    heatmaps: list[Work] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.predictions or self.heatmaps)


@dataclass(frozen=True)
class Sent:
    predictions: int = 0
    heatmaps: int = 0


def outbox_send(outbox: Outbox) -> Sent:
    """Send what the worker side found to do."""
    return Sent(
        predictions=predictions_send(outbox.predictions) if outbox.predictions else 0,
        heatmaps=heatmaps_send(outbox.heatmaps) if outbox.heatmaps else 0,
    )


def predictions_send_on_commit(work: Iterable[Work], *, marked: bool = False) -> None:
    """Send these predictions' tasks once the current transaction commits.

    ``marked`` when ``enqueued_at`` was set with the rows themselves; only a failed send is written back then.
    """
    work = list(work)
    if work:
        transaction.on_commit(lambda: predictions_send(work, marked=marked))


def predictions_send(work: Iterable[Work], *, marked: bool = False) -> int:
    """Send one task per prediction; returns how many were sent."""
    task = current_app.tasks[PREDICTION_RUN]
    sent, failed = [], []
    for prediction_id, queue in work:
        try:
            task.apply_async(kwargs={"prediction_id": str(prediction_id)}, queue=queue, retry=False)
        except Exception:  # the broker's errors vary by transport; none may lose the upload
            logger.warning("Could not enqueue prediction %s; the sweeper will resend it", prediction_id, exc_info=True)
            failed.append(prediction_id)
            continue
        sent.append(prediction_id)
    if sent and not marked:
        Prediction.objects.filter(id__in=sent).update(enqueued_at=timezone.now())
    if failed and marked:
        Prediction.objects.filter(id__in=failed, status=PredictionStatus.QUEUED).update(enqueued_at=None)
    return len(sent)


def heatmaps_send(work: Iterable[Work]) -> int:
    """Send Grad-CAM work for succeeded predictions, one task per queue and batch, below the second opinions.

    The heatmap is an aid, so it waits behind every queued second opinion of the queue.
    """
    task = current_app.tasks[PREDICTION_HEATMAPS]
    by_queue: dict[str, list[str]] = {}
    for prediction_id, queue in work:
        by_queue.setdefault(queue, []).append(str(prediction_id))
    sent = 0
    size = settings.MEDPORTAL_BATCH_SIZE
    for queue, ids in by_queue.items():
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            try:
                task.apply_async(
                    kwargs={"prediction_ids": chunk},
                    queue=queue,
                    priority=settings.MEDPORTAL_HEATMAP_PRIORITY,
                    retry=False,
                )
            except Exception:  # the broker's errors vary by transport
                logger.warning("Could not enqueue heatmaps for %s; the sweeper will resend them", chunk, exc_info=True)
                continue
            sent += len(chunk)
    return sent
