"""Writes for AI models, predictions and reviews."""

import json
import logging
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from imaging.models import Image, Study, StudyStatus
from imaging.storage import blob_store, content_name, sha256_hex
from inference.models import AIModel, AIModelStatus, Prediction, PredictionStatus, Review, ReviewDecision
from inference.selectors import aimodels_for_study

logger = logging.getLogger(__name__)

TERMINAL = (PredictionStatus.SUCCEEDED, PredictionStatus.FAILED)


# --- Model registry -------------------------------------------------------------------------


def _card_value(card: dict, key: str):
    if key not in card:
        raise ValidationError(f"The model card has no '{key}'.")
    return card[key]


@transaction.atomic
def aimodel_register(*, weights_path: Path, card: dict, activate: bool = True, queue: str | None = None) -> AIModel:
    """Register one exact model version from its weights file and card.

    Registering the same name, version and weights again returns the existing entry;
    the same name and version with other weights is refused, so a version always
    means one set of weights.
    """
    weights_path = Path(weights_path)
    data = weights_path.read_bytes()
    sha256 = sha256_hex(data)
    name, version = _card_value(card, "name"), str(_card_value(card, "version"))
    existing = AIModel.objects.filter(name=name, version=version).first()
    if existing is not None:
        if existing.weights_sha256 != sha256:
            raise ValidationError(
                f"{name} v{version} is already registered with other weights; give the new weights a new version."
            )
        return existing
    labels = list(_card_value(card, "labels"))
    height, width = (int(v) for v in _card_value(card, "input_size"))
    blob = blob_store(data=data, name=content_name("models", sha256, weights_path.suffix or ".keras"))
    model = AIModel(
        name=name,
        version=version,
        display_name=card.get("display_name") or name,
        task=card.get("task", "classification"),
        modalities=list(_card_value(card, "modalities")),
        body_part=_card_value(card, "body_part"),
        procedure=card.get("procedure") or "",
        labels=labels,
        normal_labels=card.get("normal_labels"),
        input_height=height,
        input_width=width,
        color_mode=_card_value(card, "color_mode"),
        preprocessing=card.get("preprocessing") or {},
        temperature=float(card.get("temperature") or 1.0),
        gradcam_layer=card.get("gradcam_layer") or "",
        weights=blob.name,
        weights_sha256=sha256,
        card=json.loads(json.dumps(card)),
        metrics=card.get("metrics") or {},
        queue=queue or card.get("queue") or settings.MEDPORTAL_GPU_QUEUE,
        status=AIModelStatus.RETIRED,
    )
    model.full_clean()
    model.save()
    if activate:
        aimodel_activate(model=model)
    return model


@transaction.atomic
def aimodel_activate(*, model: AIModel) -> AIModel:
    """Route new studies to this version; other versions of the same model are retired."""
    now = timezone.now()
    AIModel.objects.filter(name=model.name, status=AIModelStatus.ACTIVE).exclude(id=model.id).update(
        status=AIModelStatus.RETIRED, retired_at=now
    )
    model.status = AIModelStatus.ACTIVE
    model.retired_at = None
    model.save(update_fields=["status", "retired_at"])
    return model


@transaction.atomic
def aimodel_retire(*, model: AIModel) -> AIModel:
    """Stop routing to this version. Its past predictions keep pointing at it."""
    model.status = AIModelStatus.RETIRED
    model.retired_at = timezone.now()
    model.save(update_fields=["status", "retired_at"])
    return model


def shipped_model_dirs(zoo: Path | None = None) -> list[Path]:
    zoo = Path(zoo or settings.MEDPORTAL_MODEL_ZOO)
    return sorted(p.parent for p in zoo.glob("*/card.json") if (p.parent / "model.keras").exists())


def aimodels_register_shipped(*, zoo: Path | None = None) -> list[AIModel]:
    """Register every model shipped in the repository's zoo (idempotent)."""
    registered = []
    for directory in shipped_model_dirs(zoo):
        card = json.loads((directory / "card.json").read_text())
        model = aimodel_register(weights_path=directory / "model.keras", card=card, activate=False)
        if not AIModel.objects.active().filter(name=model.name).exists():
            aimodel_activate(model=model)
        registered.append(model)
    return registered


# --- Predictions: creating and queueing -----------------------------------------------------


def prediction_refusal_reason(*, image: Image, model: AIModel) -> str:
    """Why this model must not read this image, or "" when it may.

    A model never reads an image smaller than its own input: enlarging invents no detail, and a
    network trained on larger pictures sees an enlarged thumbnail as something it has never seen,
    yet still answers with high confidence.
    """
    if min(image.width, image.height) < min(model.input_height, model.input_width):
        return (
            f"Not run: the image is {image.width}×{image.height} pixels, smaller than the "
            f"{model.input_width}×{model.input_height} this model reads; an enlarged image would "
            "give an unreliable answer."
        )
    return ""


def predictions_create_for_image(*, image: Image) -> list[Prediction]:
    """One prediction per active model that applies to the image's study: queued, or refused with the reason."""
    return predictions_create_for_images(study=image.study, images=[image])


def predictions_create_for_images(*, study: Study, images: Sequence[Image]) -> list[Prediction]:
    """The same for several new images of one study, with one statement per table.

    Their tasks are sent once the transaction commits; ``enqueued_at`` is set now, so the
    send needs no statement of its own (a failed send clears it for the sweeper).
    """
    now = timezone.now()
    models = aimodels_for_study(study=study)
    predictions = []
    for image in images:
        for model in models:
            reason = prediction_refusal_reason(image=image, model=model)
            if reason:
                predictions.append(
                    Prediction(image=image, model=model, status=PredictionStatus.FAILED, error=reason, finished_at=now)
                )
            else:
                predictions.append(Prediction(image=image, model=model, enqueued_at=now))
    if not predictions:
        return predictions
    Prediction.objects.bulk_create(predictions)
    queued = [p for p in predictions if p.status == PredictionStatus.QUEUED]
    if queued:
        # Queued work makes the study "AI pending" whatever else it holds; a worker finishing
        # the study's last prediction at this moment waits for this row lock and recounts.
        Study.objects.filter(id=study.id).exclude(status=StudyStatus.AI_PENDING).update(
            status=StudyStatus.AI_PENDING, updated_at=now
        )
        pairs = [(p.id, p.model.queue) for p in queued]
        transaction.on_commit(lambda: predictions_enqueue(pairs, mark_sent=False))
    else:
        study_refresh_status(study_id=study.id)
    return predictions


def predictions_enqueue_on_commit(predictions: Sequence[Prediction]) -> None:
    if not predictions:
        return
    pairs = [(p.id, p.model.queue) for p in predictions]
    transaction.on_commit(lambda: predictions_enqueue(pairs))


def predictions_enqueue(pairs: Iterable[tuple[uuid.UUID, str]], *, mark_sent: bool = True) -> int:
    """Send one task per prediction. A broker outage is logged, not raised: the sweeper resends.

    ``mark_sent=False`` when ``enqueued_at`` was already set with the rows; only a failed
    send is written back then.
    """
    from inference.tasks import prediction_run

    sent, failed = [], []
    for prediction_id, queue in pairs:
        try:
            prediction_run.apply_async(kwargs={"prediction_id": str(prediction_id)}, queue=queue, retry=False)
        except Exception:  # the broker's errors vary by transport; none may lose the upload
            logger.warning("Could not enqueue prediction %s; the sweeper will resend it", prediction_id, exc_info=True)
            failed.append(prediction_id)
            continue
        sent.append(prediction_id)
    if sent and mark_sent:
        Prediction.objects.filter(id__in=sent).update(enqueued_at=timezone.now())
    if failed and not mark_sent:
        Prediction.objects.filter(id__in=failed, status=PredictionStatus.QUEUED).update(enqueued_at=None)
    return len(sent)


@transaction.atomic
def predictions_rerun(*, images: Iterable[Image], model: AIModel | None = None) -> list[Prediction]:
    """Queue AI again: new predictions for models that have not read the image yet, and failed ones again.

    With ``model`` only that version runs (e.g. a newly activated version over past images).
    Images whose pixels cannot be decoded are skipped: no model can read them.
    """
    queued: list[Prediction] = []
    for image in images:
        if not image.analysable:
            continue
        models = [model] if model is not None else aimodels_for_study(study=image.study)
        for candidate in models:
            if prediction_refusal_reason(image=image, model=candidate):
                continue
            prediction, created = Prediction.objects.get_or_create(image=image, model=candidate)
            if created:
                queued.append(prediction)
            elif prediction.status == PredictionStatus.FAILED:
                _reset_to_queued(prediction, attempts=0)
                queued.append(prediction)
        study_refresh_status(study_id=image.study_id)
    if queued:
        predictions_enqueue_on_commit(queued)
    return queued


def _reset_to_queued(prediction: Prediction, *, attempts: int | None = None) -> None:
    prediction.status = PredictionStatus.QUEUED
    prediction.error = ""
    prediction.claim_token = None
    prediction.started_at = None
    prediction.finished_at = None
    prediction.queued_at = timezone.now()
    if attempts is not None:
        prediction.attempts = attempts
    prediction.save(
        update_fields=["status", "error", "claim_token", "started_at", "finished_at", "queued_at", "attempts"]
    )


# --- Predictions: the worker side -----------------------------------------------------------


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
    written = Prediction.objects.filter(id=prediction.id, claim_token=token, status=PredictionStatus.RUNNING).update(
        status=PredictionStatus.SUCCEEDED,
        **fields,
        heatmap=heatmap_name,
        error="",
        finished_at=timezone.now(),
        inference_ms=inference_ms,
    )
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
    """Mark a prediction failed with its reason (only under this worker's claim, when one is given)."""
    query = Prediction.objects.filter(id=prediction.id).exclude(status__in=TERMINAL)
    if token is not None:
        query = query.filter(claim_token=token)
    written = query.update(
        status=PredictionStatus.FAILED, error=reason[:4000] or "Unknown error", finished_at=timezone.now()
    )
    return bool(written)


def prediction_record_heatmap(*, prediction: Prediction, heatmap_png: bytes) -> bool:
    """Attach the Grad-CAM heatmap to a succeeded prediction that has none yet. Returns whether it was written."""
    sha = sha256_hex(heatmap_png)
    name = blob_store(data=heatmap_png, name=content_name("heatmaps", sha, ".png")).name
    written = Prediction.objects.filter(id=prediction.id, status=PredictionStatus.SUCCEEDED, heatmap="").update(
        heatmap=name
    )
    return bool(written)


def predictions_enqueue_heatmaps(pairs: Iterable[tuple[uuid.UUID, str]]) -> int:
    """Send Grad-CAM work for succeeded predictions, one task per queue and batch, below the second opinions.

    The heatmap is an aid, so it waits behind every queued second opinion of the queue. A broker
    outage is logged, not raised: the sweeper sends the work again.
    """
    from inference.tasks import prediction_heatmaps

    by_queue: dict[str, list[str]] = {}
    for prediction_id, queue in pairs:
        by_queue.setdefault(queue, []).append(str(prediction_id))
    sent = 0
    size = settings.MEDPORTAL_BATCH_SIZE
    for queue, ids in by_queue.items():
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            try:
                prediction_heatmaps.apply_async(
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


def predictions_release(*, predictions: Sequence[Prediction], token: uuid.UUID, reason: str) -> None:
    """Give claimed predictions back after a transient failure, or fail those out of attempts."""
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
    if requeue:
        predictions_enqueue(requeue)


def predictions_sweep(*, now=None) -> dict[str, int]:
    """Recover work the broker lost or a dead worker left behind.

    Queued predictions whose task was never sent, or sent long ago, are sent again
    (a duplicate task is harmless). Running ones past the time limit go back to the
    queue until they run out of attempts, and are then failed with the reason.
    """
    now = now or timezone.now()
    resend_before = now - timedelta(seconds=settings.MEDPORTAL_REQUEUE_AFTER)
    stale_before = now - timedelta(seconds=settings.MEDPORTAL_TASK_TIME_LIMIT)
    stats = {"resent": 0, "requeued": 0, "failed": 0, "heatmaps": 0}

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
                stats["failed"] += 1
                study_refresh_status(study_id=prediction.image.study_id)
        elif Prediction.objects.filter(
            id=prediction.id, claim_token=prediction.claim_token, status=PredictionStatus.RUNNING
        ).update(status=PredictionStatus.QUEUED, claim_token=None, started_at=None, enqueued_at=None):
            stats["requeued"] += 1

    lost = Prediction.objects.filter(status=PredictionStatus.QUEUED).filter(
        Q(enqueued_at__isnull=True, queued_at__lt=resend_before) | Q(enqueued_at__lt=resend_before)
    )
    pairs = list(lost.values_list("id", "model__queue"))
    stats["resent"] = predictions_enqueue(pairs)

    # Heatmap work lost with the broker. Bounded by a window, so a model whose Grad-CAM
    # can never work is not retried forever; its second opinions stand without a heatmap.
    no_heatmap = Prediction.objects.filter(
        status=PredictionStatus.SUCCEEDED,
        heatmap="",
        finished_at__lt=resend_before,
        finished_at__gte=now - timedelta(seconds=settings.MEDPORTAL_HEATMAP_RETRY_WINDOW),
    )
    stats["heatmaps"] = predictions_enqueue_heatmaps(list(no_heatmap.values_list("id", "model__queue")))
    return stats


# --- Studies --------------------------------------------------------------------------------


def studies_refresh_after_batch(*, study_ids: Iterable) -> int:
    """Refresh the status of the studies a batch touched.

    A study with AI work still queued or running stays "AI pending"; during a burst that is
    most of them, so only the ones whose last prediction just finished (or that are not yet
    marked pending) are refreshed. Returns how many were refreshed.
    """
    study_ids = set(study_ids)
    if not study_ids:
        return 0
    pending = set(
        Prediction.objects.filter(
            image__study_id__in=study_ids, status__in=[PredictionStatus.QUEUED, PredictionStatus.RUNNING]
        ).values_list("image__study_id", flat=True)
    )
    settled = set(
        Study.objects.filter(id__in=pending & study_ids, status=StudyStatus.AI_PENDING).values_list("id", flat=True)
    )
    refresh = study_ids - settled
    studies_refresh_status(study_ids=refresh)
    return len(refresh)


def study_refresh_status(*, study_id) -> StudyStatus:
    """Derive the study's status from its predictions and reviews."""
    return studies_refresh_status(study_ids=[study_id])[study_id]


@transaction.atomic
def studies_refresh_status(*, study_ids: Iterable) -> dict:
    """Derive each study's status from its predictions and reviews, a few statements for them all.

    The study rows are locked before their predictions are counted, so an upload adding work
    to one of them either commits first and is counted, or waits and marks it pending after.
    """
    study_ids = set(study_ids)
    if not study_ids:
        return {}
    current = dict(
        Study.objects.select_for_update().filter(id__in=study_ids).order_by("id").values_list("id", "status")
    )
    pending_states = [PredictionStatus.QUEUED, PredictionStatus.RUNNING]
    counts = {
        row["image__study_id"]: row
        for row in Prediction.objects.filter(image__study_id__in=current)
        .values("image__study_id")
        .annotate(
            pending=Count("id", filter=Q(status__in=pending_states)),
            succeeded=Count("id", filter=Q(status=PredictionStatus.SUCCEEDED)),
            unreviewed=Count("id", filter=Q(status=PredictionStatus.SUCCEEDED, review__isnull=True)),
        )
        .order_by()
    }
    statuses = {}
    changes: dict[StudyStatus, list] = {}
    for study_id, old in current.items():
        row = counts.get(study_id)
        if row is None:
            status = StudyStatus.RECEIVED
        elif row["pending"]:
            status = StudyStatus.AI_PENDING
        elif row["succeeded"] and row["unreviewed"] == 0:
            status = StudyStatus.REVIEWED
        else:
            status = StudyStatus.AI_DONE
        statuses[study_id] = status
        if status != old:
            changes.setdefault(status, []).append(study_id)
    now = timezone.now()
    for status, ids in changes.items():
        extra = {"ai_completed_at": now} if status == StudyStatus.AI_DONE else {}
        Study.objects.filter(id__in=ids).update(status=status, updated_at=now, **extra)
    return statuses


# --- Reviews --------------------------------------------------------------------------------


@transaction.atomic
def review_create(
    *,
    prediction: Prediction,
    reviewer: User,
    decision: ReviewDecision | str,
    final_label: str = "",
    comment: str = "",
) -> Review:
    if not reviewer.has_role(Role.RADIOLOGIST):
        raise PermissionError("Only radiologists review AI second opinions.")
    prediction = Prediction.objects.select_for_update().select_related("model").get(id=prediction.id)
    if prediction.status != PredictionStatus.SUCCEEDED:
        raise ValidationError("Only a finished AI second opinion can be reviewed.")
    if Review.objects.filter(prediction=prediction).exists():
        raise ValidationError("This AI second opinion has already been reviewed.")
    final_label = (final_label or "").strip()
    if decision == ReviewDecision.AGREE:
        final_label = final_label or prediction.label
        if final_label != prediction.label:
            raise ValidationError({"final_label": "To give another label, choose Override."})
    elif decision == ReviewDecision.OVERRIDE:
        if not final_label:
            raise ValidationError({"final_label": "An override needs the final label."})
        if final_label == prediction.label:
            raise ValidationError({"final_label": "That is the AI's label; choose Agree instead."})
    if final_label not in prediction.model.labels:
        raise ValidationError({"final_label": f"Choose one of: {', '.join(prediction.model.labels)}."})
    review = Review(
        prediction=prediction,
        reviewer=reviewer,
        decision=decision,
        final_label=final_label,
        comment=comment.strip(),
    )
    review.full_clean()
    review.save()
    study_refresh_status(study_id=prediction.image.study_id)
    return review
