import io
import logging

import numpy as np
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import cache_control
from PIL import Image as PILImage

from accounts.policy import Act, Resource, allowed_roles
from audit.access import audit_access, audited
from audit.models import AuditAction, AuditInterface
from imaging.forms import StudyForm
from imaging.models import Image
from imaging.pixels import image_pixels
from imaging.services import study_create
from imaging.validation import ImageRejected
from patients.models import Patient
from web.access import role_required

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = (320, 320)


@audited(AuditInterface.UI)
@role_required(allowed_roles(Resource.STUDY, Act.WRITE))
def study_create_view(request: HttpRequest, patient_id) -> HttpResponse:
    patient = get_object_or_404(Patient, id=patient_id)
    form = StudyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            study = study_create(patient=patient, **form.cleaned_data, created_by=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            audit_access(request, obj=study, patient=patient.id, action=AuditAction.CREATE)
            messages.success(request, f"Study {study.accession_number} created. Upload its images below.")
            return redirect("pages:study-detail", study_id=study.id)
    audit_access(request, obj=patient, detail="new study form")
    return render(request, "imaging/study_form.html", {"form": form, "patient": patient})


def _png_response(pixels, *, max_size: tuple[int, int] | None = None) -> HttpResponse:
    picture = PILImage.fromarray(pixels)
    if max_size is not None:
        picture.thumbnail(max_size)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=max_size is not None)
    return HttpResponse(buffer.getvalue(), content_type="image/png")


# An image never changes under its id (content-addressed), so browsers may keep it; "private" keeps
# patient images out of shared caches.
_image_cache = cache_control(private=True, max_age=3600)


def _pixels_or_none(image: Image):
    if not image.analysable:
        return None
    try:
        return image_pixels(image)
    except (ImageRejected, OSError, ValueError):
        logger.warning("Image %s could not be decoded for display", image.id, exc_info=True)
        return None


def _no_preview() -> HttpResponse:
    # A neutral grey tile; the page says in words why there is no picture.
    response = _png_response(np.full((120, 120), 200, dtype=np.uint8))
    response["Cache-Control"] = "no-store"
    return response


@audited(AuditInterface.UI)
@_image_cache
@role_required(allowed_roles(Resource.IMAGE, Act.READ))
def image_thumbnail(request: HttpRequest, image_id) -> HttpResponse:
    image = get_object_or_404(Image.objects.select_related("study"), id=image_id)
    audit_access(request, obj=image, patient=image.study.patient_id, action=AuditAction.DOWNLOAD, detail="thumbnail")
    pixels = _pixels_or_none(image)
    return _no_preview() if pixels is None else _png_response(pixels, max_size=THUMBNAIL_SIZE)


@audited(AuditInterface.UI)
@_image_cache
@role_required(allowed_roles(Resource.IMAGE, Act.READ))
def image_display(request: HttpRequest, image_id) -> HttpResponse:
    """The full image as 8-bit PNG, whatever it was uploaded as, so the viewer can window it on a canvas."""
    image = get_object_or_404(Image.objects.select_related("study"), id=image_id)
    audit_access(request, obj=image, patient=image.study.patient_id, action=AuditAction.DOWNLOAD)
    pixels = _pixels_or_none(image)
    return _no_preview() if pixels is None else _png_response(pixels)
