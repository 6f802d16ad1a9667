"""A study's status, derived from its predictions and reviews: the one place it is refreshed.

The web side (uploads, re-runs, reviews) and the worker side (results, failures, the sweeper)
both refresh through here, in the transaction that changed what the status is derived from.
"""

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from imaging.models import Study, StudyStatus
from inference.models import Prediction, PredictionStatus


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
