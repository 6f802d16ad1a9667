"""A study's status and AI flag, derived from its predictions and reviews: the one place they are refreshed.

The web side (uploads, re-runs, reviews) and the worker side (results, failures, the sweeper)
both refresh through here, in the transaction that changed what they are derived from.
"""

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count, Max, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThanOrEqual
from django.utils import timezone

from imaging.models import Study, StudyStatus
from inference.models import Prediction, PredictionStatus

# Confidence at or above which an unreviewed abnormal AI result flags its study (and moves it up the worklist).
AI_FLAG_CONFIDENCE = 0.8


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
    with transaction.atomic():
        # All the batch's studies locked at once and in one order: two workers never wait crosswise.
        _lock(study_ids)
        studies_refresh_status(study_ids=refresh)
        # A result in a study that stays pending changes its AI flag all the same.
        _write_ai_flag(study_ids=settled)
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
    _write_ai_flag(study_ids=list(current))
    return statuses


def ai_top_confidence_of_study():
    """The highest confidence among the study's unreviewed results flagged abnormal, as a subquery."""
    abnormal = Prediction.objects.filter(
        image__study=OuterRef("pk"), status=PredictionStatus.SUCCEEDED, is_abnormal=True, review__isnull=True
    )
    return Subquery(abnormal.order_by().values("image__study").annotate(top=Max("confidence")).values("top")[:1])


@transaction.atomic
def studies_refresh_ai_flag(*, study_ids: Iterable) -> None:
    """Store each study's top unreviewed abnormal confidence and AI flag (``studies_refresh_status``
    does this too, for the studies it refreshes)."""
    study_ids = set(study_ids)
    if not study_ids:
        return
    _lock(study_ids)
    _write_ai_flag(study_ids=study_ids)


def _lock(study_ids: Iterable) -> None:
    # Locked before the results are read: two workers finishing results of one study at once
    # write one after the other, the second reading the first's result, so neither is lost.
    list(Study.objects.select_for_update().filter(id__in=study_ids).order_by("id").values_list("id", flat=True))


def _write_ai_flag(*, study_ids: Iterable) -> None:
    """One statement for all these studies, whose rows the caller has locked."""
    Study.objects.filter(id__in=study_ids).update(
        ai_top_confidence=ai_top_confidence_of_study(),
        ai_flagged=GreaterThanOrEqual(Coalesce(ai_top_confidence_of_study(), Value(-1.0)), Value(AI_FLAG_CONFIDENCE)),
    )
