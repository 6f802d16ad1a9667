import functools
import io
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import cache_control
from PIL import Image as PILImage

from accounts.policy import Act, Resource, allowed_roles
from accounts.roles import Role
from audit.access import audit_access, audited
from audit.models import AuditAction, AuditInterface
from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.models import Study
from imaging.pixels import image_pixels
from imaging.selectors import study_for_page
from inference.dicom_report import has_report, prediction_sr_bytes, sr_filename
from inference.forms import AmendReviewForm, ReviewForm, WorklistFilterForm
from inference.models import Prediction, PredictionStatus
from inference.selectors import studies_worklist_filtered, study_images
from inference.services import review_amend, review_create, review_unavailable_reason, reviews_agree_all
from web.access import RoleDenied, role_required
from web.charts import hbar_chart
from web.polling import polled_fragment, render_fragment
from web.templatetags.portal import duration_text

PAGE_SIZE = 25
WORKLIST_ROWS_TEMPLATE = "inference/_worklist_results.html"

# Display windows for 8-bit renderings (key, name, level, width); they change the display only.
WINDOW_PRESETS = (
    ("1", "Full range", 128, 256),
    ("2", "High contrast", 128, 128),
    ("3", "Bright", 96, 192),
    ("4", "Dark", 160, 192),
)


def _awaiting_review():
    return Prediction.objects.filter(
        image__study=OuterRef("pk"), status=PredictionStatus.SUCCEEDED, review__isnull=True
    )


# The worklist is the queue of reviews to write, so it is open to whoever may write them.
WORKLIST_ROLES = allowed_roles(Resource.REVIEW, Act.WRITE)

# Sortable columns: (sort key, header, the direction a first click sorts in).
WORKLIST_COLUMNS = (
    ("priority", "Priority", "ascending"),
    ("ai", "AI flag", "descending"),
    ("accession", "Accession", "ascending"),
    ("patient", "Patient", "ascending"),
    ("exam", "Exam", "ascending"),
    ("images", "Images", "descending"),
    ("status", "Status", "ascending"),
    ("waiting", "Waiting", "descending"),
)


def _sort_headers(query: QueryDict, sort: str) -> list[dict]:
    """Each column's header: its ``aria-sort`` and the link that sorts by it (or reverses it)."""
    active, descending = sort.removeprefix("-"), sort.startswith("-")
    if not active:
        active, descending = "priority", False  # the triage order starts with priority, STAT first
    headers = []
    for key, label, first in WORKLIST_COLUMNS:
        if key == active:
            state = "descending" if descending else "ascending"
            following = key if descending else f"-{key}"
        else:
            state = None
            following = key if first == "ascending" else f"-{key}"
        link = query.copy()
        link.pop("page", None)
        link["sort"] = following
        headers.append({"key": key, "label": label, "aria_sort": state, "url": f"?{link.urlencode()}"})
    return headers


@dataclass(frozen=True)
class WorklistRow:
    """A worklist row's study and the texts its cells show, worked out once for the page.

    Through template filters and ``{% url %}`` each of these cost a look-up of the active language,
    the time zone or the URL resolver per cell; a page of rows spent more on them than on its SQL.
    """

    study: Study
    priority: str
    modality: str
    body_part: str
    status: str
    review_url: str
    registered: str  # as the ``date:'Y-m-d H:i'`` filter writes it, in the current time zone
    waiting: str  # as the ``waiting`` filter writes it
    overdue: bool  # as the ``overdue`` filter decides it (over an hour)


@functools.cache
def _labels(field_name: str) -> dict:
    """What ``get_<field>_display`` shows for each value of a Study field."""
    return {value: str(label) for value, label in Study._meta.get_field(field_name).flatchoices}


def _label(field_name: str, value) -> str:
    return _labels(field_name).get(value, value)


def _rows(studies) -> list[WorklistRow]:
    """The page's rows; waiting times are measured from one moment, so the rows of a page agree."""
    now = timezone.now()
    marker = str(uuid.UUID(int=0))
    url_start, _, url_end = reverse("pages:review", args=[marker]).partition(marker)
    rows = []
    for study in studies:
        created = study.created_at
        rows.append(
            WorklistRow(
                study=study,
                priority=_label("priority", study.priority),
                modality=_label("modality", study.modality),
                body_part=_label("body_part", study.body_part),
                status=_label("status", study.status),
                review_url=f"{url_start}{study.id}{url_end}",
                registered=timezone.localtime(created).strftime("%Y-%m-%d %H:%M"),
                waiting=duration_text(now - created),
                overdue=now - created > timedelta(hours=1),
            )
        )
    return rows


def _worklist_context(request: HttpRequest) -> dict:
    """One page of the filtered, sorted worklist (``_worklist_audit`` records it once it is sent)."""
    filters = WorklistFilterForm(request.GET or None)
    query = filters.worklist_query()
    page = Paginator(studies_worklist_filtered(query=query), PAGE_SIZE).get_page(request.GET.get("page"))
    extra = request.GET.copy()
    extra.pop("page", None)
    return {
        "filters": filters,
        "query": query,
        "page": page,
        "rows": _rows(page.object_list),
        "query_extra": extra.urlencode(),
        "headers": _sort_headers(extra, query.sort),
        "names_searchable": query.names_searchable,
    }


def _worklist_audit(request: HttpRequest, context: dict, *, detail: str) -> None:
    """Each row of the page, audited as shown."""
    audit_access(request, rows=[(study, study.patient_id) for study in context["page"].object_list], detail=detail)


@audited(AuditInterface.UI)
@role_required(WORKLIST_ROLES)
def worklist(request: HttpRequest) -> HttpResponse:
    context = _worklist_context(request)
    _worklist_audit(request, context, detail="worklist")
    context["results_html"], context["rows_etag"] = render_fragment(request, WORKLIST_ROWS_TEMPLATE, context)
    context["rows_url"] = _with_query(reverse("pages:worklist-rows"), request.GET)
    context["poll_seconds"] = settings.MEDPORTAL_WORKLIST_POLL_SECONDS
    return render(request, "inference/worklist.html", context)


@audited(AuditInterface.UI)
@role_required(WORKLIST_ROLES)
def worklist_rows(request: HttpRequest) -> HttpResponse:
    """The worklist's results (table and pages) alone, which the page polls to show new and changed
    studies without a reload. Audited like the page whenever it is sent (it can be fetched on its
    own); a poll that finds the rows the page already shows gets 304 and no audit rows."""
    context = _worklist_context(request)
    return polled_fragment(
        request,
        WORKLIST_ROWS_TEMPLATE,
        context,
        record_access=lambda: _worklist_audit(request, context, detail="worklist rows"),
    )


def _model_card(model) -> dict:
    """The summary a radiologist needs before trusting a model: data, validation accuracy, intended use."""
    card = model.card or {}
    dataset = card.get("dataset")
    if isinstance(dataset, dict):
        dataset = dataset.get("name") or dataset.get("source") or ""
    validation = ((card.get("metrics") or {}).get("validation") or {}) if isinstance(card.get("metrics"), dict) else {}
    return {
        "dataset": dataset or "",
        "accuracy": validation.get("accuracy"),
        "intended_use": card.get("intended_use") or "",
        "limitations": card.get("limitations") or "",
    }


def _worklist_query(request: HttpRequest) -> QueryDict:
    """The worklist filters the radiologist came with, carried through review and "save and next"."""
    source = request.POST.get("worklist_query") if request.method == "POST" else None
    query = QueryDict(source, mutable=True) if source is not None else request.GET.copy()
    for key in ("prediction", "page"):
        query.pop(key, None)
    return query


def _with_query(url: str, query: QueryDict) -> str:
    return f"{url}?{query.urlencode()}" if query else url


def _next_after_review(*, study: Study, query: QueryDict) -> str:
    """The next thing to review: another result of this study, else the first study of the same
    searched, filtered and sorted worklist that awaits a review, else that worklist."""
    if Prediction.objects.filter(image__study=study, status=PredictionStatus.SUCCEEDED, review__isnull=True).exists():
        return _with_query(reverse("pages:review", args=[study.id]), query)
    worklist_query = WorklistFilterForm(query or None).worklist_query()
    following = studies_worklist_filtered(query=worklist_query)
    following = following.filter(Exists(_awaiting_review())).exclude(id=study.id).first()
    if following is None:
        return _with_query(reverse("pages:worklist"), query)
    return _with_query(reverse("pages:review", args=[following.id]), query)


def _natural_key(text: str) -> list:
    """'img-2.png' before 'img-10.png'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text or "")]


def reading_order(images: list) -> list:
    """A series in the order it was acquired: by series, then file name (numbers compared as
    numbers), then upload time; upload order alone mixes a drag-and-drop batch.

    Non-image instances (reports, key objects, waveforms, documents) have nothing to read or show
    here; the study page lists them with their download link.
    """
    return sorted(
        (image for image in images if image.has_pixels),
        key=lambda image: (image.series_instance_uid, _natural_key(image.original_filename), image.uploaded_at),
    )


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@audited(AuditInterface.UI)
@role_required(allowed_roles(Resource.REVIEW, Act.WRITE))
def review(request: HttpRequest, study_id) -> HttpResponse:
    try:
        study = study_for_page(study_id=study_id)
    except Study.DoesNotExist as exc:
        raise Http404("No such study.") from exc
    query = _worklist_query(request)
    images = reading_order(study_images(study=study))
    predictions = [p for image in images for p in sorted(image.predictions.all(), key=lambda p: p.model.name)]
    reviewable = [p for p in predictions if p.status == PredictionStatus.SUCCEEDED and not _has_review(p)]

    wanted = request.POST.get("prediction") or request.GET.get("prediction")
    current = next((p for p in predictions if str(p.id) == wanted), None) if wanted else None
    if current is None:
        current = (
            reviewable[0]
            if reviewable
            else next((p for p in predictions if p.status == PredictionStatus.SUCCEEDED), None)
        )
    current_image = next((image for image in images if current and image.id == current.image_id), None)
    if current_image is None and images:
        current_image = images[0]

    form = None
    amend_form = None
    # Only a finished result has a label to agree with or override; a declined or failed one
    # (reached by its link or by paging through the study's results) is shown, not reviewed.
    has_opinion = current is not None and current.status == PredictionStatus.SUCCEEDED
    if has_opinion and not _has_review(current):
        form = ReviewForm(request.POST or None, labels=list(current.model.labels), ai_label=current.label)
        if request.method == "POST" and form.is_valid():
            try:
                saved = review_create(
                    prediction=current,
                    reviewer=request.user,
                    decision=form.cleaned_data["decision"],
                    final_label=form.cleaned_data["final_label"],
                    comment=form.cleaned_data["comment"],
                )
            except PermissionError as exc:
                raise RoleDenied((Role.RADIOLOGIST,)) from exc
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                audit_access(request, obj=saved, patient=study.patient_id, action=AuditAction.CREATE)
                message = (
                    f"Review saved for {study.accession_number}: {saved.get_decision_display().lower()}, "
                    f"final label {saved.final_label}."
                )
                messages.success(request, message)
                following = _next_after_review(study=study, query=query)
                if _wants_json(request):
                    return JsonResponse({"ok": True, "next": following, "message": message})
                return redirect(following)
    elif request.method == "POST" and "amend" in request.POST and has_opinion:
        amend_form = AmendReviewForm(request.POST, review=current.review)
        if amend_form.is_valid():
            try:
                amended = review_amend(
                    review=current.review,
                    user=request.user,
                    decision=amend_form.cleaned_data["decision"],
                    final_label=amend_form.cleaned_data["final_label"],
                    comment=amend_form.cleaned_data["comment"],
                    reason=amend_form.cleaned_data["reason"],
                )
            except PermissionError as exc:
                raise RoleDenied((Role.RADIOLOGIST,)) from exc
            except ValidationError as exc:
                amend_form.add_error(None, exc)
            else:
                reason = amend_form.cleaned_data["reason"]
                audit_access(
                    request,
                    obj=amended,
                    patient=study.patient_id,
                    action=AuditAction.UPDATE,
                    detail=f"review amended: {reason}"[:255],
                )
                message = (
                    f"Review amended: {amended.get_decision_display().lower()}, final label {amended.final_label}."
                )
                messages.success(request, message)
                page_query = query.copy()
                page_query["prediction"] = str(current.id)
                here = _with_query(reverse("pages:review", args=[study.id]), page_query)
                if _wants_json(request):
                    return JsonResponse({"ok": True, "next": here, "message": message})
                return redirect(here)
    elif request.method == "POST":
        message = (
            "This AI second opinion has already been reviewed."
            if has_opinion
            else "There is no AI second opinion to review for that image: the model gave no label."
        )
        messages.info(request, message)
        following = _next_after_review(study=study, query=query)
        if _wants_json(request):
            return JsonResponse({"ok": True, "next": following, "message": message})
        return redirect(following)

    history = []
    if has_opinion and _has_review(current):
        history = list(current.review.amendments.select_related("amended_by"))
        if amend_form is None and current.review.reviewer_id == request.user.id:
            amend_form = AmendReviewForm(review=current.review)
    audit_access(request, obj=study, patient=study.patient_id)
    chart = None
    if current is not None and current.probabilities:
        rows = sorted(current.probabilities.items(), key=lambda item: item[1], reverse=True)
        chart = hbar_chart(
            rows,
            title="Class probabilities of the AI second opinion",
            highlight=current.label,
            label_width=110,
            plot_width=170,
        )
    position = predictions.index(current) if current in predictions else None

    def link(index: int) -> str | None:
        if position is None or not 0 <= index < len(predictions):
            return None
        page_query = query.copy()
        page_query["prediction"] = str(predictions[index].id)
        return _with_query(reverse("pages:review", args=[study.id]), page_query)

    context = {
        "study": study,
        "patient": study.patient,
        "images": images,
        "current": current,
        "current_image": current_image,
        "form": form,
        "chart": chart,
        "card": _model_card(current.model) if current else None,
        "remaining": len(reviewable),
        "failed": [p for p in predictions if p.status == PredictionStatus.FAILED],
        "pending": [p for p in predictions if p.status in (PredictionStatus.QUEUED, PredictionStatus.RUNNING)],
        "position": None if position is None else position + 1,
        "total": len(predictions),
        "previous_url": link(position - 1) if position is not None else None,
        "next_url": link(position + 1) if position is not None else None,
        "worklist_query": query.urlencode(),
        "worklist_url": _with_query(reverse("pages:worklist"), query),
        "window_presets": WINDOW_PRESETS,
        "has_dicom": any(image.content_type == DICOM_CONTENT_TYPE for image in images),
        "amend_form": amend_form,
        "history": history,
        **_agree_all_context(predictions),
    }
    return render(request, "inference/review.html", context)


def _agree_all_context(predictions: list[Prediction]) -> dict:
    """What "agree with all" would record and what it would leave, for its confirmation."""
    return {
        "agree_all": [p for p in predictions if p.status == PredictionStatus.SUCCEEDED and not _has_review(p)],
        "agree_all_left": [(p, reason) for p in predictions if (reason := review_unavailable_reason(p))],
    }


@audited(AuditInterface.UI)
@role_required(allowed_roles(Resource.REVIEW, Act.WRITE))
def review_agree_all(request: HttpRequest, study_id) -> HttpResponse:
    """Agree with every AI second opinion of the study awaiting review, after one confirmation.

    The review page confirms in a dialog; without JavaScript this page is the confirmation. Only
    the opinions listed in the confirmation are agreed with, then the next study of the same
    filtered worklist opens, as after "save and next".
    """
    try:
        study = study_for_page(study_id=study_id)
    except Study.DoesNotExist as exc:
        raise Http404("No such study.") from exc
    query = _worklist_query(request)
    if request.method == "POST":
        try:
            outcome = reviews_agree_all(
                study=study, reviewer=request.user, prediction_ids=_uuids(request.POST.getlist("predictions"))
            )
        except PermissionError as exc:
            raise RoleDenied((Role.RADIOLOGIST,)) from exc
        audit_access(
            request,
            action=AuditAction.CREATE,
            rows=[(review, study.patient_id) for review in outcome.agreed],
            detail="agree with all",
        )
        message = _agree_all_message(study=study, count=len(outcome.agreed))
        messages.success(request, message)
        for prediction, reason in outcome.left:
            messages.warning(request, f"Not reviewed: {_opinion_name(prediction)}: {reason}")
        following = _next_after_review(study=study, query=query)
        if _wants_json(request):
            return JsonResponse({"ok": True, "next": following, "message": message})
        return redirect(following)

    images = reading_order(study_images(study=study))
    predictions = [p for image in images for p in sorted(image.predictions.all(), key=lambda p: p.model.name)]
    audit_access(request, obj=study, patient=study.patient_id, detail="agree with all")
    context = {
        "study": study,
        "patient": study.patient,
        "worklist_query": query.urlencode(),
        "review_url": _with_query(reverse("pages:review", args=[study.id]), query),
        **_agree_all_context(predictions),
    }
    return render(request, "inference/review_agree_all.html", context)


def _uuids(values: list[str]) -> list[uuid.UUID]:
    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue  # not an opinion anyone was shown
    return ids


def _opinion_name(prediction: Prediction) -> str:
    return f"{prediction.image.original_filename or 'an image'} ({prediction.model.display_name})"


def _agree_all_message(*, study: Study, count: int) -> str:
    if count == 0:
        return f"No AI second opinion of {study.accession_number} was awaiting review: nothing was agreed with."
    return f"Agreed with {count} AI second opinion{'s' if count != 1 else ''} of {study.accession_number}."


def _has_review(prediction: Prediction) -> bool:
    try:
        return prediction.review is not None
    except Prediction.review.RelatedObjectDoesNotExist:
        return False


@audited(AuditInterface.UI)
@cache_control(private=True, max_age=3600)
@role_required(allowed_roles(Resource.PREDICTION, Act.READ))
def prediction_heatmap(request: HttpRequest, prediction_id) -> HttpResponse:
    """The Grad-CAM heatmap as stored: 8-bit grayscale PNG at the image's size; the page colours it."""
    prediction = get_object_or_404(
        Prediction.objects.select_related("image__study"),
        id=prediction_id,
    )
    if not prediction.heatmap:
        raise Http404("This AI result has no heatmap.")
    patient_id = prediction.image.study.patient_id
    audit_access(request, obj=prediction, patient=patient_id, action=AuditAction.DOWNLOAD, detail="heatmap")
    with default_storage.open(prediction.heatmap.name, "rb") as handle:
        return HttpResponse(handle.read(), content_type="image/png")


@audited(AuditInterface.UI)
@role_required(allowed_roles(Resource.PREDICTION, Act.READ))
def prediction_report(request: HttpRequest, prediction_id) -> HttpResponse:
    """A succeeded AI result, or a model's refusal to read the image, as a DICOM Structured Report,
    filed under the original patient and study."""
    prediction = get_object_or_404(
        Prediction.objects.select_related("image__study__patient", "model"), id=prediction_id
    )
    if not has_report(prediction):
        return HttpResponse(
            "Only a finished AI second opinion or a model's refusal has a report.",
            status=409,
            content_type="text/plain",
        )
    audit_access(
        request,
        obj=prediction,
        patient=prediction.image.study.patient_id,
        action=AuditAction.DOWNLOAD,
        detail="DICOM SR",
    )
    response = HttpResponse(prediction_sr_bytes(prediction=prediction), content_type=DICOM_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{sr_filename(prediction)}"'
    return response


@audited(AuditInterface.UI)
@role_required(allowed_roles(Resource.STUDY, Act.READ))
def study_report(request: HttpRequest, study_id) -> HttpResponse:
    """The study as a printable report: patient, study, every image with and without its heatmap,
    each AI second opinion with its confidence and model version, and the radiologist's review."""
    try:
        study = study_for_page(study_id=study_id)
    except Study.DoesNotExist as exc:
        raise Http404("No such study.") from exc
    images = reading_order(study_images(study=study))
    audit_access(request, obj=study, patient=study.patient_id, detail="study report")
    context = {"study": study, "patient": study.patient, "images": images, "printed_at": timezone.now()}
    return render(request, "inference/study_report.html", context)


@audited(AuditInterface.UI)
@cache_control(private=True, max_age=3600)
@role_required(allowed_roles(Resource.PREDICTION, Act.READ))
def prediction_overlay(request: HttpRequest, prediction_id) -> HttpResponse:
    """The image with its Grad-CAM heatmap blended on in viridis, for the printed report."""
    # OpenCV is loaded only by this page, not by every web process at start.
    from inference.ml.preprocessing import overlay_heatmap  # noqa: PLC0415

    prediction = get_object_or_404(Prediction.objects.select_related("image__study"), id=prediction_id)
    if not prediction.heatmap:
        raise Http404("This AI result has no heatmap.")
    pixels = image_pixels(prediction.image)
    with default_storage.open(prediction.heatmap.name, "rb") as handle:
        heat = PILImage.open(handle).convert("L").resize((pixels.shape[1], pixels.shape[0]))
    blended = overlay_heatmap(pixels, np.asarray(heat, dtype=np.float32) / 255.0, alpha=0.45)
    audit_access(
        request,
        obj=prediction.image,
        patient=prediction.image.study.patient_id,
        action=AuditAction.DOWNLOAD,
        detail="heatmap overlay",
    )
    buffer = io.BytesIO()
    PILImage.fromarray(blended).save(buffer, format="PNG")
    return HttpResponse(buffer.getvalue(), content_type="image/png")
