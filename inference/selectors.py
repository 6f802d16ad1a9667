import datetime
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.db.models import Count, Exists, F, Field, Func, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from imaging.models import Image, Study, StudyStatus
from inference.models import NOT_RUN_PREFIX, AIModel, Prediction, PredictionStatus, Review
from inference.study_status import AI_FLAG_CONFIDENCE
from patients.models import Patient


def aimodels_for_study(*, study: Study) -> list[AIModel]:
    """Active models that read this study's modality, body part and clinical question."""
    # Modalities are a JSON list; the few candidates of one body part are filtered here
    # rather than with JSON lookups that SQLite lacks.
    candidates = AIModel.objects.active().filter(body_part=study.body_part).order_by("name", "-created_at")
    chosen: dict[str, AIModel] = {}
    for model in candidates:
        if model.name not in chosen and model.applies_to(
            modality=study.modality, body_part=study.body_part, procedure=study.procedure
        ):
            chosen[model.name] = model
    return list(chosen.values())


# Confidence at or above which an unreviewed abnormal AI result moves a study up the worklist.
WORKLIST_FLAG_CONFIDENCE = AI_FLAG_CONFIDENCE
WORKLIST_TRIAGE_ORDER = ("priority", F("ai_flagged").desc(), "created_at", "id")


def studies_worklist(*, statuses=None):
    """Studies awaiting a radiologist, in triage order; the pages and the API share it.

    Order: priority (STAT first), then studies with an unreviewed AI result flagged abnormal at or
    above ``WORKLIST_FLAG_CONFIDENCE``, then the oldest first. Each study carries ``ai_flagged``,
    ``ai_top_confidence`` (highest unreviewed abnormal confidence) and ``image_count``; one query.

    The flag and the top confidence are the study's own columns, kept by inference.study_status
    as results and reviews change: the triage order is then an index of the backlog, and a page
    deep in it costs its rows rather than a look-up of every backlog study's results.
    """
    statuses = statuses or (StudyStatus.RECEIVED, StudyStatus.AI_PENDING, StudyStatus.AI_DONE)
    return (
        Study.objects.filter(status__in=statuses)
        .select_related("patient")
        .with_image_count()
        .order_by(*WORKLIST_TRIAGE_ORDER)
    )


# The worklist's backlog: what still waits for a radiologist. Its search box matches patient names
# only here (see accounts/policy.py): the whole register is searched by name by staff alone.
WORKLIST_BACKLOG = (StudyStatus.RECEIVED, StudyStatus.AI_PENDING, StudyStatus.AI_DONE)


def _ascending(*fields):
    return tuple(F(name).asc() for name in fields)


PATIENT_SORT_FIELDS = ("family_name", "given_name", "mrn")
# Equal values of a sorted column keep the triage order (less the AI flag, see worklist_order).
WORKLIST_SORT_TIES = ("priority", "created_at", "id")

# Sortable worklist columns: key -> the column's values in ascending order. Anything else is
# ignored; priority and waiting time break ties, so a sort never shuffles equal rows between polls.
WORKLIST_SORTS: dict[str, tuple] = {
    "priority": _ascending("priority"),
    "ai": (Coalesce(F("ai_top_confidence"), Value(-1.0)).asc(),),
    "accession": _ascending("accession_number"),
    "patient": _ascending(*(f"patient__{name}" for name in PATIENT_SORT_FIELDS)),
    "exam": _ascending("modality", "body_part"),
    "images": _ascending("image_count"),
    "status": _ascending("status"),
    # A shorter wait is a later arrival.
    "waiting": (F("created_at").desc(),),
}


@dataclass(frozen=True)
class WorklistQuery:
    """What a radiologist narrowed the worklist to; every part is optional."""

    statuses: tuple[str, ...] = (StudyStatus.AI_DONE,)
    search: str = ""
    modality: str = ""
    priority: int | None = None
    model_name: str = ""
    received_from: datetime.date | None = None
    received_to: datetime.date | None = None
    sort: str = ""  # a key of WORKLIST_SORTS, "-" first for descending; "" is the triage order

    @property
    def names_searchable(self) -> bool:
        return set(self.statuses) <= set(WORKLIST_BACKLOG)


def _local_midnight(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


# Up to this many patients matched by a search are looked up first and their studies read through
# the patient index; a broader term (a common name fragment) is matched inside the backlog's scan.
WORKLIST_SEARCH_PATIENTS = 200


def _worklist_search(term: str, *, names: bool) -> Q:
    """Accession number (exact), MRN (exact, or by its start among the backlog) and, with ``names``,
    every word of the patient's name, each in the family or given name.

    The matching patients are read first (the MRN's ``UPPER`` index, the names' and MRN's trigram
    indexes on PostgreSQL) so that the studies are found through the patient and accession indexes:
    an ``OR`` with a subquery would make PostgreSQL scan every study of the list instead, which for
    the reviewed studies is the whole history.
    """
    patients = Q(mrn__iexact=term)
    words = term.replace(",", " ").split()
    if names:
        patients |= Q(mrn__istartswith=term)
        every_word = Q()
        for word in words:
            every_word &= Q(family_name__icontains=word) | Q(given_name__icontains=word)
        patients |= every_word
    matching = Patient.objects.filter(patients).order_by()
    found = list(matching.values_list("pk", flat=True)[: WORKLIST_SEARCH_PATIENTS + 1])
    by_patient = Q(patient__in=matching.values("pk")) if len(found) > WORKLIST_SEARCH_PATIENTS else Q(patient__in=found)
    return Q(accession_number__iexact=term) | by_patient


def worklist_order(sort: str) -> tuple:
    """The order for a ``sort`` parameter; an unknown one gives the triage order."""
    key = sort.removeprefix("-")
    if key not in WORKLIST_SORTS:
        return WORKLIST_TRIAGE_ORDER
    columns = WORKLIST_SORTS[key]
    if sort.startswith("-"):
        columns = tuple(column.copy().reverse_ordering() for column in columns)
    # Ties in priority, then waiting, order; not by the AI flag, which would have to be worked out
    # for every row of the list before the sort rather than for the page's rows after it.
    return (*columns, *WORKLIST_SORT_TIES)


def studies_worklist_filtered(*, query: WorklistQuery) -> QuerySet[Study]:
    """The worklist page's rows: ``studies_worklist`` narrowed by search and filters, then sorted.

    Received dates are the local calendar days of ``created_at`` (when the study was registered,
    which is also where its waiting time starts), as a range its indexes can serve.
    """
    studies = studies_worklist(statuses=query.statuses)
    term = query.search.strip()
    if term:
        studies = studies.filter(_worklist_search(term, names=query.names_searchable))
    if query.modality:
        studies = studies.filter(modality=query.modality)
    if query.priority is not None:
        studies = studies.filter(priority=query.priority)
    if query.model_name:
        studies = studies.filter(
            Exists(Prediction.objects.filter(image__study=OuterRef("pk"), model__name=query.model_name))
        )
    if query.received_from:
        studies = studies.filter(created_at__gte=_local_midnight(query.received_from))
    if query.received_to:
        studies = studies.filter(created_at__lt=_local_midnight(query.received_to + timedelta(days=1)))
    if query.sort.removeprefix("-") == "patient" and set(query.statuses) <= set(WORKLIST_BACKLOG):
        return _backlog_by_patient(studies, descending=query.sort.startswith("-"))
    return studies.order_by(*worklist_order(query.sort))


def _backlog_by_patient(studies: QuerySet[Study], *, descending: bool) -> QuerySet[Study]:
    """The backlog in patient order (``WORKLIST_SORTS["patient"]``), each study's patient read on its own.

    Joined to the patients, PostgreSQL walks them in name order until a page of them has a study
    waiting, which costs the register rather than the backlog (1.7 ms of SQL with 50,000 patients,
    109 ms with 500,000, for the same 1,000 studies waiting); joined the other way round it hashes
    the whole register. A scalar subquery per field cannot be turned into a join, so the backlog's
    studies are read, each one's name looked up by the patient's key, and sorted: the cost of the
    backlog alone. The page's patients are then read in one query rather than joined.
    """
    patient = Patient.objects.filter(pk=OuterRef("patient_id")).order_by()
    if connections[studies.db].vendor == "postgresql":
        # One look-up per study rather than one per field: a row value sorts field by field.
        columns = [Subquery(patient.values(key=_RowValue(*PATIENT_SORT_FIELDS))[:1])]
    else:
        columns = [Subquery(patient.values(field)[:1]) for field in PATIENT_SORT_FIELDS]
    names = [column.desc() if descending else column.asc() for column in columns]
    return studies.select_related(None).prefetch_related("patient").order_by(*names, *WORKLIST_SORT_TIES)


class _RowValue(Func):
    """PostgreSQL's ``ROW(a, b, …)``, which compares and sorts column by column; only ever sorted on."""

    function = "ROW"
    output_field = Field()


def worklist_model_names() -> list[tuple[str, str]]:
    """(name, display name) of every AI model, one per name, for the worklist's model filter."""
    names: dict[str, str] = {}
    for name, display_name in AIModel.objects.order_by("name", "-created_at").values_list("name", "display_name"):
        names.setdefault(name, display_name)  # the newest version's display name
    return list(names.items())


@dataclass(frozen=True)
class QueueStatus:
    """How much AI work is waiting and how long a new upload will wait for its second opinion."""

    queue: str | None
    queued: int
    running: int
    throughput: float  # images per second the workers have been finishing, or the configured assumption
    measured: bool  # whether throughput comes from recent work rather than the assumption
    soft_limit: int

    @property
    def depth(self) -> int:
        return self.queued + self.running

    @property
    def expected_wait_seconds(self) -> float:
        return round(self.depth / self.throughput, 1) if self.depth else 0.0

    @property
    def over_limit(self) -> bool:
        return self.depth > self.soft_limit

    @property
    def message(self) -> str:
        if not self.over_limit:
            return ""
        minutes = max(1, round(self.expected_wait_seconds / 60))
        return (
            f"The AI queue is busy ({self.depth} images waiting). Uploads are stored as usual; "
            f"AI second opinions are expected in about {minutes} min."
        )

    def as_dict(self) -> dict:
        return {
            "queue": self.queue,
            "depth": self.depth,
            "queued": self.queued,
            "running": self.running,
            "throughput_per_second": round(self.throughput, 2),
            "expected_wait_seconds": self.expected_wait_seconds,
            "soft_limit": self.soft_limit,
            "over_limit": self.over_limit,
            "message": self.message,
        }


THROUGHPUT_WINDOW = timedelta(minutes=15)
THROUGHPUT_SAMPLE = 500


def _busy_throughput(queue: str | None) -> float | None:
    """Images per second while the workers were busy: recent batches' sizes over their run times,
    times the number of workers that ran them. Idle time between jobs does not count against it."""
    since = timezone.now() - THROUGHPUT_WINDOW
    rows = Prediction.objects.filter(
        status__in=[PredictionStatus.SUCCEEDED, PredictionStatus.FAILED],
        queued_at__gte=since,
        started_at__isnull=False,
        finished_at__isnull=False,
        claim_token__isnull=False,
    )
    if queue:
        rows = rows.filter(model__queue=queue)
    batches: dict = {}
    hosts = set()
    for token, host, started, finished in rows.order_by("-queued_at").values_list(
        "claim_token", "worker_host", "started_at", "finished_at"
    )[:THROUGHPUT_SAMPLE]:
        count, start, end = batches.get(token, (0, started, finished))
        batches[token] = (count + 1, min(start, started), max(end, finished))
        hosts.add(host.rsplit(":", 1)[0])
    images = sum(count for count, _, _ in batches.values())
    busy = sum((end - start).total_seconds() for _, start, end in batches.values())
    if images < 10 or busy <= 0:
        return None
    return images / busy * max(len(hosts), 1)


def queue_status(*, queue: str | None = None) -> QueueStatus:
    """Depth of the AI queue (one Celery queue, or all) and the expected wait at the recent pace.

    A burst of uploads asks on every request, so the answer is cached for a second per process
    (and the throughput estimate for ten): an expected wait does not need to be fresher than that.
    """
    status_key = f"medportal:queue-status:{queue or '*'}"
    cached = cache.get(status_key)
    if cached is not None:
        return cached
    counts = Prediction.objects.filter(status__in=[PredictionStatus.QUEUED, PredictionStatus.RUNNING])
    if queue:
        counts = counts.filter(model__queue=queue)
    by_status = {row["status"]: row["n"] for row in counts.values("status").annotate(n=Count("id"))}
    key = f"medportal:throughput:{queue or '*'}"
    throughput = cache.get(key)
    if throughput is None:
        throughput = _busy_throughput(queue) or 0.0
        cache.set(key, throughput, timeout=10)
    measured = throughput > 0
    status = QueueStatus(
        queue=queue,
        queued=by_status.get(PredictionStatus.QUEUED, 0),
        running=by_status.get(PredictionStatus.RUNNING, 0),
        throughput=throughput if measured else settings.MEDPORTAL_ASSUMED_THROUGHPUT,
        measured=measured,
        soft_limit=settings.MEDPORTAL_QUEUE_SOFT_LIMIT,
    )
    cache.set(status_key, status, timeout=1)
    return status


# --- Study pages: each study's images with their AI results -------------------------------------


def predictions_for_display() -> QuerySet[Prediction]:
    return Prediction.objects.select_related("model", "review", "review__reviewer").order_by("model__name", "queued_at")


def study_images(*, study: Study) -> list[Image]:
    """Images with their AI results (model, review) in three queries in all."""
    return list(
        study.images.select_related("uploaded_by").prefetch_related(
            Prefetch("predictions", queryset=predictions_for_display())
        )
    )


def images_pending(images: list[Image]) -> bool:
    """Whether any AI result on the page is still queued or running."""
    return any(p.status in ("queued", "running") for image in images for p in image.predictions.all())


# --- Priors: the patient's earlier studies, next to the one being read -------------------------

PRIORS_SHOWN = 10
PRIOR_IMAGES_SHOWN = 8


@dataclass(frozen=True)
class Priors:
    studies: list[Study]  # newest first; each with ``prior_date``, ``image_count`` and ``shown_images``
    more: bool  # the patient has earlier studies beyond these


def study_priors(*, study: Study, limit: int = PRIORS_SHOWN, images: int = PRIOR_IMAGES_SHOWN) -> Priors:
    """The same patient's studies made before ``study``, newest first, with their AI results and reviews.

    "Before" goes by the study date where it is known, else the day the study was registered, then
    by registration time: a prior imported today from an archive is still last year's study, and
    the patient's later studies are not priors of this one. At most ``limit`` studies, each with its
    first ``images`` images and their AI results (model, review): three queries however long the
    patient's history or large their studies.
    """
    day = study.study_date or timezone.localdate(study.created_at)
    earlier = Q(prior_date__lt=day) | Q(prior_date=day, created_at__lt=study.created_at)
    # Non-image instances have no picture to show next to the study being read.
    first_images = (
        Image.objects.with_pixels()
        .prefetch_related(Prefetch("predictions", queryset=predictions_for_display()))
        .order_by("series_instance_uid", "original_filename", "uploaded_at")[:images]
    )
    rows = list(
        Study.objects.filter(patient_id=study.patient_id)
        .exclude(id=study.id)
        .annotate(prior_date=Coalesce("study_date", TruncDate("created_at")))
        .filter(earlier)
        .with_image_count()
        .order_by("-prior_date", "-created_at", "id")
        .prefetch_related(Prefetch("images", queryset=first_images, to_attr="shown_images"))[: limit + 1]
    )
    return Priors(studies=rows[:limit], more=len(rows) > limit)


# --- Dashboards ---------------------------------------------------------------------------------


def studies_today(*, day: datetime.date) -> QuerySet[Study]:
    # A range on created_at (midnight to midnight, local time) can use its index; ``__date`` cannot.
    start = timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))
    end = timezone.make_aware(datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time.min))
    failed = (
        Prediction.objects.filter(image__study=OuterRef("pk"), status=PredictionStatus.FAILED)
        .exclude(error__startswith=NOT_RUN_PREFIX)
        .order_by()
        .values("image__study")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        Study.objects.filter(created_at__gte=start, created_at__lt=end)
        .select_related("patient")
        .with_image_count()
        .annotate(failed_count=Coalesce(Subquery(failed), 0))
        .order_by("priority", "-created_at")
    )


# The dashboards' counts (studies awaiting review by priority, the AI queue per model version,
# failures) are counted at most this often per cache; every admin and radiologist reading the
# dashboard in between gets the same numbers, and the page says when they were counted. The studies
# and results a dashboard names (the oldest waiting study, the latest failures, today's studies)
# are read fresh on every request.
DASHBOARD_COUNTS_SECONDS = 5


def _dashboard_counts(key: str, count) -> dict:
    """``count()``'s dict with its ``counted_at``, from the cache while that is under the age limit."""
    cached = cache.get(key)
    now = timezone.now()
    if cached is not None and now - cached["counted_at"] <= timedelta(seconds=DASHBOARD_COUNTS_SECONDS):
        return cached
    fresh = {**count(), "counted_at": now}
    cache.set(key, fresh, timeout=DASHBOARD_COUNTS_SECONDS)
    return fresh


def worklist_summary() -> dict:
    """Size of the radiologists' worklist and its split by priority (counted at most every few
    seconds, see ``DASHBOARD_COUNTS_SECONDS``), and the study waiting longest (always fresh)."""

    def count() -> dict:
        waiting = Study.objects.filter(status=StudyStatus.AI_DONE)
        return {"by_priority": dict(waiting.order_by().values_list("priority").annotate(n=Count("id")))}

    counts = _dashboard_counts("medportal:dashboard:worklist", count)
    oldest = studies_worklist(statuses=(StudyStatus.AI_DONE,)).order_by("created_at").first()
    return {
        "size": sum(counts["by_priority"].values()),
        "by_priority": counts["by_priority"],
        "counted_at": counts["counted_at"],
        "oldest": oldest,
    }


def prediction_queue() -> dict:
    """Queue depth (queued and running AI results) per model version and failures, counted at most
    every few seconds (``DASHBOARD_COUNTS_SECONDS``); the latest failures are read fresh."""

    def count() -> dict:
        rows = (
            Prediction.objects.filter(status__in=("queued", "running"))
            .order_by()
            .values("model__name", "model__version", "status")
            .annotate(n=Count("id"))
        )
        per_model: dict[str, dict[str, int]] = {}
        for row in rows:
            key = f"{row['model__name']} v{row['model__version']}"
            per_model.setdefault(key, {"queued": 0, "running": 0})[row["status"]] = row["n"]
        since = timezone.now() - timedelta(hours=24)
        # Images a model declined (too small, unlike its training images) are not faults to chase.
        declined = Q(error__startswith=NOT_RUN_PREFIX)
        recent = Q(finished_at__gte=since)
        failures = Prediction.objects.filter(status="failed").aggregate(
            total=Count("id", filter=~declined),
            last_24h=Count("id", filter=recent & ~declined),
            declined_24h=Count("id", filter=recent & declined),
        )
        return {
            "per_model": per_model,
            "failed_total": failures["total"],
            "failed_24h": failures["last_24h"],
            "declined_24h": failures["declined_24h"],
        }

    counts = _dashboard_counts("medportal:dashboard:queue", count)
    per_model = counts["per_model"]
    status = queue_status()
    return {
        "throughput": status.throughput,
        "throughput_measured": status.measured,
        "expected_wait_seconds": status.expected_wait_seconds,
        "over_limit": status.over_limit,
        "soft_limit": status.soft_limit,
        "queued": sum(v["queued"] for v in per_model.values()),
        "running": sum(v["running"] for v in per_model.values()),
        "per_model": per_model,
        "failed_total": counts["failed_total"],
        "failed_24h": counts["failed_24h"],
        "declined_24h": counts.get("declined_24h", 0),  # counts cached before this field existed
        "counted_at": counts["counted_at"],
        "failed_latest": list(
            Prediction.objects.filter(status="failed")
            .exclude(error__startswith=NOT_RUN_PREFIX)
            .select_related("model", "image__study")
            .order_by("-finished_at")[:5]
        ),
    }


AGREEMENT_CACHE_SECONDS = 60


def agreement_per_model() -> list[dict]:
    """How often radiologists agreed with each model version's second opinion.

    It reads every review ever made, so each process computes it at most once a minute: a rate
    over thousands of reviews does not move within a minute, and the admin dashboard stays as
    fast with years of reviews as with a week's.
    """
    key = "medportal:agreement-per-model"
    cached = cache.get(key)
    if cached is not None:
        return cached
    rows = (
        Review.objects.order_by()
        .values("prediction__model__name", "prediction__model__version")
        .annotate(total=Count("id"), agreed=Count("id", filter=Q(decision="agree")))
        .order_by("prediction__model__name", "prediction__model__version")
    )
    result = [
        {
            "model": f"{row['prediction__model__name']} v{row['prediction__model__version']}",
            "total": row["total"],
            "agreed": row["agreed"],
            "rate": row["agreed"] / row["total"] if row["total"] else 0.0,
        }
        for row in rows
    ]
    cache.set(key, result, timeout=AGREEMENT_CACHE_SECONDS)
    return result
