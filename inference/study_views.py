"""The study pages and the uploads made from them: they show and queue AI second opinions.

They live in inference, not imaging, because they compose both apps (imaging knows nothing of
AI): a study page lists each image with its second opinions and the AI queue's expected wait.
"""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.policy import Act, Resource, allowed_roles
from accounts.roles import Role
from audit.access import audit_access, audited
from audit.models import AuditAction, AuditInterface
from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.forms import DicomImportForm, ImageUploadForm
from imaging.intake import IncomingFile, Intake, files_intake
from imaging.models import Image, ImageSource, Study
from imaging.selectors import study_for_page
from inference.selectors import images_pending, queue_status, study_images
from web.access import role_required
from web.polling import polled_fragment, render_fragment

STUDY_RESULTS_TEMPLATE = "imaging/_study_results.html"


def _study_or_404(study_id) -> Study:
    try:
        return study_for_page(study_id=study_id)
    except Study.DoesNotExist as exc:
        raise Http404("No such study.") from exc


@audited(AuditInterface.UI)
@role_required(allowed_roles(Resource.STUDY, Act.READ))
def study_detail(request: HttpRequest, study_id) -> HttpResponse:
    study = _study_or_404(study_id)
    images = study_images(study=study)
    audit_access(request, obj=study, patient=study.patient_id)
    context = {
        "study": study,
        "patient": study.patient,
        "images": images,
        "pending": images_pending(images),
        "queue": queue_status() if images_pending(images) else None,
        "upload_form": ImageUploadForm(),
        "can_upload": request.user.has_role(Role.STAFF),
        "has_dicom": any(image.content_type == DICOM_CONTENT_TYPE for image in images),
    }
    context["results_html"], context["results_etag"] = render_fragment(request, STUDY_RESULTS_TEMPLATE, context)
    return render(request, "imaging/study_detail.html", context)


@audited(AuditInterface.UI)
@role_required(allowed_roles(Resource.STUDY, Act.READ))
def study_results(request: HttpRequest, study_id) -> HttpResponse:
    """The images-and-results fragment of the study page, which the page polls while AI is pending.

    Audited like any read whenever it is sent: the fragment can be fetched on its own, and a trail
    that trusts the page to have recorded it would miss exactly those requests. A poll that finds
    what the page already shows gets 304 and no audit row.
    """
    study = get_object_or_404(Study.objects.only("id", "status", "patient_id"), id=study_id)
    images = study_images(study=study)
    pending = images_pending(images)
    context = {"study": study, "images": images, "pending": pending, "queue": queue_status() if pending else None}
    return polled_fragment(
        request,
        STUDY_RESULTS_TEMPLATE,
        context,
        record_access=lambda: audit_access(request, obj=study, patient=study.patient_id, detail="results"),
    )


@audited(AuditInterface.UI)
@require_POST
@role_required(allowed_roles(Resource.IMAGE, Act.WRITE))
def study_upload(request: HttpRequest, study_id) -> HttpResponse:
    """Store each file on its own: a rejected file is reported with its reason and the others go through.

    The page's script sends one file per request (so each gets its own progress bar and error)
    and asks for JSON; the plain form posts them all at once and gets messages back.
    """
    study = get_object_or_404(Study, id=study_id)
    files = request.FILES.getlist("files")
    intakes = files_intake(
        files=[IncomingFile.from_upload(upload) for upload in files],
        source=ImageSource.UPLOAD,
        uploaded_by=request.user,
        study=study,
    )
    results = []
    for upload, intake in zip(files, intakes, strict=True):
        if not intake.stored:
            results.append({"filename": upload.name, "ok": False, "error": intake.error})
            continue
        if intake.created:
            audit_access(request, obj=intake.image, patient=study.patient_id, action=AuditAction.CREATE)
        results.append(
            {
                "filename": upload.name,
                "ok": True,
                "image_id": str(intake.image.id),
                "duplicate": not intake.created,
                "predictions": intake.image.predictions.count(),
                **_analysable_note(intake.image),
            }
        )
    wants_json = "application/json" in request.headers.get("Accept", "")
    if wants_json:
        status = 400 if not files or not any(r["ok"] for r in results) else 200
        if not files:
            results.append({"filename": "", "ok": False, "error": "No file was sent."})
        # Tells the uploader up front when a busy AI queue will make the second opinion late.
        queue = queue_status().as_dict()
        return JsonResponse(
            {"results": results, "results_url": reverse("pages:study-results", args=[study.id]), "queue": queue},
            status=status,
        )
    if not files:
        messages.error(request, "Choose at least one image to upload.")
    elif any(result["ok"] for result in results):
        busy = queue_status()
        if busy.over_limit:
            messages.warning(request, busy.message)
    for result in results:
        if not result["ok"]:
            messages.error(request, f"{result['filename']}: rejected. {result['error']}")
        elif result["duplicate"]:
            messages.info(request, f"{result['filename']}: this image is already in the study.")
        elif result["note"]:
            messages.warning(request, f"{result['filename']}: {result['note']}")
        else:
            messages.success(request, f"{result['filename']}: uploaded; AI second opinion queued.")
    return redirect("pages:study-detail", study_id=study.id)


def _analysable_note(image: Image) -> dict:
    """What the uploader's result line says about AI for a stored image."""
    if image.analysable:
        return {"analysable": True, "note": ""}
    return {
        "analysable": False,
        "state": "Stored, not analysable",
        "note": f"Stored, not analysable: {image.not_analysable_reason}",
    }


def _import_result(filename: str, intake: Intake) -> dict:
    if not intake.stored:
        return {"filename": filename, "ok": False, "error": intake.error}
    image = intake.image
    study = image.study
    result = {
        "filename": filename,
        "ok": True,
        "image_id": str(image.id),
        "duplicate": not intake.created,
        "study_url": reverse("pages:study-detail", args=[study.id]),
        "study_label": f"Study {study.accession_number} · {study.patient}",
        **_analysable_note(image),
    }
    if result["duplicate"]:
        result["state"] = "Already stored"
    elif result["analysable"]:
        result["state"] = "Stored — AI queued" if image.predictions.exists() else "Stored"
    return result


def _audit_import(request: HttpRequest, intakes: list[Intake]) -> None:
    stored = [(intake, intake.image.study) for intake in intakes if intake.stored]
    for action, items, detail in (
        (AuditAction.CREATE, [(s.patient, None) for i, s in stored if i.patient_created], "dicom import"),
        (AuditAction.CREATE, [(s, s.patient_id) for i, s in stored if i.study_created], "dicom import"),
        (AuditAction.CREATE, [(i.image, s.patient_id) for i, s in stored if i.created], "dicom import"),
        # Telling where a duplicate is filed shows which patient it belongs to.
        (AuditAction.READ, [(i.image, s.patient_id) for i, s in stored if not i.created], "dicom import duplicate"),
        (AuditAction.CREATE, [(i.held, i.held.patient_id) for i in intakes if i.held], "dicom import held"),
    ):
        audit_access(request, action=action, rows=items, detail=detail)


@audited(AuditInterface.UI)
@require_http_methods(["GET", "HEAD", "POST"])
@role_required(allowed_roles(Resource.IMAGE, Act.WRITE))
def dicom_import(request: HttpRequest) -> HttpResponse:
    """Import DICOM files not yet tied to a study: each is filed by its own PatientID and StudyInstanceUID.

    Like the study upload, the page's script sends one file per request and asks for JSON; the
    plain form posts them all at once and gets messages back.
    """
    if request.method != "POST":
        return render(request, "imaging/dicom_import.html", {"form": DicomImportForm()})
    files = request.FILES.getlist("files")
    intakes = files_intake(
        files=[IncomingFile.from_upload(upload) for upload in files],
        source=ImageSource.UPLOAD,
        uploaded_by=request.user,
    )
    _audit_import(request, intakes)
    results = [_import_result(upload.name, intake) for upload, intake in zip(files, intakes, strict=True)]
    if "application/json" in request.headers.get("Accept", ""):
        if not files:
            results.append({"filename": "", "ok": False, "error": "No file was sent."})
        status = 200 if any(result["ok"] for result in results) else 400
        return JsonResponse({"results": results, "queue": queue_status().as_dict()}, status=status)
    if not files:
        messages.error(request, "Choose at least one DICOM file to import.")
    for result in results:
        if not result["ok"]:
            messages.error(request, f"{result['filename']}: rejected. {result['error']}")
        elif result["duplicate"]:
            messages.info(request, f"{result['filename']}: already stored, in {result['study_label']}.")
        elif result["note"]:
            messages.warning(request, f"{result['filename']}: {result['note']} Filed in {result['study_label']}.")
        else:
            messages.success(request, f"{result['filename']}: filed in {result['study_label']}.")
    return redirect("pages:dicom-import")
