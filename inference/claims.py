"""The worker's side of predictions: claims, results, failures, releases and recovery.

Nothing here sends a task: functions that find work to send return it (as ``Work`` or an
``Outbox``) and the caller's task hands it to ``inference.dispatch``.
"""

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from imaging.storage import blob_store, content_name, sha256_hex
from inference.dispatch import Outbox, Work
from inference.models import NOT_RUN_PREFIX, AIModel, Prediction, PredictionStatus
from inference.reports import prediction_reports_store_on_commit
from inference.study_status import studies_refresh_after_batch, studies_refresh_ai_flag, study_refresh_status

TERMINAL = (PredictionStatus.SUCCEEDED, PredictionStatus.FAILED)


@dataclass
class Claim:
    token: uuid.UUID
    model: AIModel
    predictions: list[Prediction]


def _worker_host() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def predictions_claim(*, prediction_id: uuid.UUID | str, batch_size: int | None = None) -> Claim | None:
    """Claim this prediction and up to ``batch_size - 1`` other queued ones of the same model version.

    Rows are locked with SKIP LOCKED, so concurrent workers never claim the same row;
    the status is re-checked, so a task delivered twice finds nothing to do.
    """
    batch_size = batch_size or settings.MEDPORTAL_BATCH_SIZE
    # Most tasks of a burst find their prediction already run by a draining batch: one cheap read
    # answers them without a transaction and a row lock.
    if not Prediction.objects.filter(id=prediction_id, status=PredictionStatus.QUEUED).exists():
        return None
    with transaction.atomic():
        first = (
            Prediction.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(id=prediction_id, status=PredictionStatus.QUEUED)
            .first()
        )
        if first is None:
            return None
        ids = [first.id, *_queued_ids(model_id=first.model_id, limit=batch_size - 1, exclude=first.id)]
        token = _mark_claimed(ids)
    return _claimed(token, ids=ids, model_id=first.model_id)


def predictions_claim_next(*, model_id, batch_size: int | None = None) -> Claim | None:
    """Claim the next batch of queued predictions of this model version, most urgent first; None when none wait.

    A worker that just finished a batch calls this to keep its warm model busy without a
    round trip through the broker for every image.
    """
    batch_size = batch_size or settings.MEDPORTAL_BATCH_SIZE
    with transaction.atomic():
        ids = _queued_ids(model_id=model_id, limit=batch_size)
        if not ids:
            return None
        token = _mark_claimed(ids)
    return _claimed(token, ids=ids, model_id=model_id)


def _queued_ids(*, model_id, limit: int, exclude=None) -> list:
    if limit <= 0:
        return []
    query = Prediction.objects.select_for_update(skip_locked=True, of=("self",)).filter(
        model_id=model_id, status=PredictionStatus.QUEUED
    )
    if exclude is not None:
        query = query.exclude(id=exclude)
    return list(query.order_by("image__study__priority", "queued_at").values_list("id", flat=True)[:limit])


def _mark_claimed(ids: list) -> uuid.UUID:
    token = uuid.uuid4()
    # The conditional update is the claim itself; on SQLite, where SELECT FOR UPDATE is a no-op,
    # it is what keeps two workers from taking the same row.
    Prediction.objects.filter(id__in=ids, status=PredictionStatus.QUEUED).update(
        status=PredictionStatus.RUNNING,
        claim_token=token,
        started_at=timezone.now(),
        worker_host=_worker_host()[:255],
        attempts=F("attempts") + 1,
    )
    return token


def _claimed(token: uuid.UUID, *, ids: list, model_id) -> Claim | None:
    predictions = list(
        Prediction.objects.filter(id__in=ids, claim_token=token, status=PredictionStatus.RUNNING).select_related(
            "image", "image__study"
        )
    )
    if not predictions:
        return None
    # One model version per claim: read it once rather than once per row.
    model = AIModel.objects.get(id=model_id)
    for prediction in predictions:
        prediction.model = model
    return Claim(token=token, model=model, predictions=predictions)


def _result_fields(model: AIModel, probabilities: Sequence[float]) -> dict:
    labels = list(model.labels)
    if len(probabilities) != len(labels):
        raise ValueError(f"The model gave {len(probabilities)} outputs for {len(labels)} labels.")
    best = max(range(len(labels)), key=lambda i: probabilities[i])
    label = labels[best]
    return {
        "label": label,
        "confidence": float(probabilities[best]),
        "probabilities": {lab: float(p) for lab, p in zip(labels, probabilities, strict=True)},
        "is_abnormal": None if model.normal_labels is None else label not in model.normal_labels,
    }


def prediction_record_success(
    *,
    prediction: Prediction,
    token: uuid.UUID,
    probabilities: Sequence[float],
    inference_ms: float,
    heatmap_png: bytes | None = None,
) -> bool:
    """Write a result, only if this worker's claim still holds. Returns whether it was written."""
    fields = _result_fields(prediction.model, probabilities)
    heatmap_name = ""
    if heatmap_png:
        sha = sha256_hex(heatmap_png)
        heatmap_name = blob_store(data=heatmap_png, name=content_name("heatmaps", sha, ".png")).name
    with transaction.atomic():
        written = Prediction.objects.filter(
            id=prediction.id, claim_token=token, status=PredictionStatus.RUNNING
        ).update(
            status=PredictionStatus.SUCCEEDED,
            **fields,
            heatmap=heatmap_name,
            error="",
            finished_at=timezone.now(),
            inference_ms=inference_ms,
        )
        if written:
            studies_refresh_ai_flag(study_ids=[prediction.image.study_id])
            prediction_reports_store_on_commit(prediction_ids=[prediction.id])
    return bool(written)


RESULT_FIELDS = [
    "status",
    "label",
    "confidence",
    "probabilities",
    "is_abnormal",
    "error",
    "finished_at",
    "inference_ms",
]


@transaction.atomic
def predictions_record_successes(
    *, token: uuid.UUID, results: Sequence[tuple[Prediction, Sequence[float]]], inference_ms: float
) -> list[Prediction]:
    """Write a whole batch's results in one round of statements, for the rows this worker's claim still holds,
    and the status of the studies whose AI work that settles.

    The rows are locked first, so a sweeper cannot hand them to another worker between the
    check and the write. Returns the predictions written.
    """
    ids = [prediction.id for prediction, _ in results]
    held = set(
        Prediction.objects.select_for_update()
        .filter(id__in=ids, claim_token=token, status=PredictionStatus.RUNNING)
        .values_list("id", flat=True)
    )
    now = timezone.now()
    written = []
    for prediction, probabilities in results:
        if prediction.id not in held:
            continue
        for name, value in _result_fields(prediction.model, probabilities).items():
            setattr(prediction, name, value)
        prediction.status = PredictionStatus.SUCCEEDED
        prediction.error = ""
        prediction.finished_at = now
        prediction.inference_ms = inference_ms
        written.append(prediction)
    if written:
        _update_rows(written, RESULT_FIELDS)
        # In the same transaction, so no reader sees every result in and the study still pending.
        studies_refresh_after_batch(study_ids={p.image.study_id for p in written})
        # Into the study as DICOM SR once the results are committed; the worker never waits on a failure.
        prediction_reports_store_on_commit(prediction_ids=[p.id for p in written])
    return written


def _update_rows(predictions: Sequence[Prediction], fields: Sequence[str]) -> None:
    """Save these fields of each row with one prepared UPDATE run for every row.

    ``bulk_update`` would build a CASE expression per row and field; for a batch of results
    that took longer in Python than the model's forward pass.
    """
    meta = Prediction._meta
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    # Only names from the model's metadata go into the text; every value is a parameter.
    sql = "UPDATE {table} SET {sets} WHERE {pk} = %s".format(  # noqa: S608
        table=quote(meta.db_table),
        sets=", ".join(f"{quote(column.column)} = %s" for column in columns),
        pk=quote(meta.pk.column),
    )
    rows = [
        [column.get_db_prep_save(getattr(prediction, column.attname), connection) for column in columns]
        + [meta.pk.get_db_prep_value(prediction.pk, connection)]
        for prediction in predictions
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def prediction_record_failure(*, prediction: Prediction, token: uuid.UUID | None, reason: str) -> bool:
    """Mark a prediction failed with its reason (only under this worker's claim, when one is given).

    A refusal (a reason starting with ``NOT_RUN_PREFIX``) is stored into a DICOM study as an SR
    like a result, so a viewer of the study learns that the model declined the image.
    """
    query = Prediction.objects.filter(id=prediction.id).exclude(status__in=TERMINAL)
    if token is not None:
        query = query.filter(claim_token=token)
    written = query.update(
        status=PredictionStatus.FAILED, error=reason[:4000] or "Unknown error", finished_at=timezone.now()
    )
    if written and reason.startswith(NOT_RUN_PREFIX):
        prediction_reports_store_on_commit(prediction_ids=[prediction.id])
    return bool(written)


@transaction.atomic
def predictions_record_heatmaps(*, heatmaps: Sequence[tuple[Prediction, bytes]]) -> int:
    """Attach Grad-CAM heatmaps (PNG) to succeeded predictions that have none yet. Returns how many were written.

    The rows are locked and checked first, then written with one prepared statement: a heatmap
    task stores a batch's heatmaps in one round, and a second delivery writes nothing.
    """
    held = set(
        Prediction.objects.select_for_update()
        .filter(id__in=[prediction.id for prediction, _ in heatmaps], status=PredictionStatus.SUCCEEDED, heatmap="")
        .values_list("id", flat=True)
    )
    written = []
    for prediction, png in heatmaps:
        if prediction.id not in held:
            continue
        held.discard(prediction.id)
        prediction.heatmap = blob_store(data=png, name=content_name("heatmaps", sha256_hex(png), ".png")).name
        written.append(prediction)
    if written:
        _update_rows(written, ["heatmap"])
    return len(written)


def predictions_release(*, predictions: Sequence[Prediction], token: uuid.UUID, reason: str) -> list[Work]:
    """Give claimed predictions back after a transient failure, or fail those out of attempts.

    Returns the predictions put back in the queue, whose tasks are to be sent again.
    """
    max_attempts = settings.MEDPORTAL_MAX_ATTEMPTS
    requeue = []
    for prediction in predictions:
        prediction.refresh_from_db(fields=["attempts"])
        if prediction.attempts >= max_attempts:
            prediction_record_failure(
                prediction=prediction, token=token, reason=f"Gave up after {prediction.attempts} attempts: {reason}"
            )
        elif Prediction.objects.filter(id=prediction.id, claim_token=token, status=PredictionStatus.RUNNING).update(
            status=PredictionStatus.QUEUED, claim_token=None, started_at=None, error=""
        ):
            requeue.append((prediction.id, prediction.model.queue))
    return requeue


@dataclass(frozen=True)
class Recovery:
    requeued: int
    failed: int
    outbox: Outbox  # lost tasks to send again: second opinions and heatmaps


def predictions_recover(*, now=None) -> Recovery:
    """Find work the broker lost or a dead worker left behind.

    Running predictions past the time limit go back to the queue until they run out of
    attempts, and are then failed with the reason. Queued predictions whose task was never
    sent, or sent long ago, are returned to be sent again (a duplicate task is harmless), as
    are recent heatmaps that never came.
    """
    now = now or timezone.now()
    resend_before = now - timedelta(seconds=settings.MEDPORTAL_REQUEUE_AFTER)
    stale_before = now - timedelta(seconds=settings.MEDPORTAL_TASK_TIME_LIMIT)
    requeued = failed = 0

    stale = list(
        Prediction.objects.filter(status=PredictionStatus.RUNNING, started_at__lt=stale_before).select_related("model")
    )
    for prediction in stale:
        if prediction.attempts >= settings.MEDPORTAL_MAX_ATTEMPTS:
            if prediction_record_failure(
                prediction=prediction,
                token=prediction.claim_token,
                reason=(
                    f"No result after {prediction.attempts} attempts: the worker died or exceeded the "
                    f"{settings.MEDPORTAL_TASK_TIME_LIMIT}s time limit."
                ),
            ):
                failed += 1
                study_refresh_status(study_id=prediction.image.study_id)
        elif Prediction.objects.filter(
            id=prediction.id, claim_token=prediction.claim_token, status=PredictionStatus.RUNNING
        ).update(status=PredictionStatus.QUEUED, claim_token=None, started_at=None, enqueued_at=None):
            requeued += 1

    lost = Prediction.objects.filter(status=PredictionStatus.QUEUED).filter(
        Q(enqueued_at__isnull=True, queued_at__lt=resend_before) | Q(enqueued_at__lt=resend_before)
    )

    # Heatmap work lost with the broker. Bounded by a window, so a model whose Grad-CAM
    # can never work is not retried forever; its second opinions stand without a heatmap.
    no_heatmap = Prediction.objects.filter(
        status=PredictionStatus.SUCCEEDED,
        heatmap="",
        finished_at__lt=resend_before,
        finished_at__gte=now - timedelta(seconds=settings.MEDPORTAL_HEATMAP_RETRY_WINDOW),
    )
    outbox = Outbox(
        predictions=list(lost.values_list("id", "model__queue")),
        heatmaps=list(no_heatmap.values_list("id", "model__queue")),
    )
    return Recovery(requeued=requeued, failed=failed, outbox=outbox)
