"""WADO-RS rendered and thumbnail resources (PS3.18 8.3.5 and 8.3.6): consumer images (JPEG, PNG).

A study or a series is rendered as its representative instance (the middle instance of its first
series with pixels, as dicomweb-client and viewers expect one picture); an instance as its default
frame (the middle one, as on MedPortal's pages); a frame as itself. Query parameters:
``viewport=vw,vh`` scales the picture to fit, keeping its aspect ratio; ``window=centre,width[,function]``
replaces the file's VOI window (function ``linear``, ``linear-exact`` or ``sigmoid``); ``quality``
(1-100) sets the JPEG quality. A thumbnail is the rendering within 128 by 128 unless a viewport is given.
"""

import io

from django.http import HttpResponse
from PIL import Image as PILImage
from PIL import ImageOps

from accounts.policy import Act, Resource, allowed_roles
from audit.access import audit_access
from audit.models import AuditAction
from imaging.dicom.parsing import read_dataset
from imaging.dicom.pixels import PixelDecodeError, frame_uint8
from imaging.dicom.render import MAX_RENDER_SIZE
from imaging.dicom.selectors import dicom_instances, dicom_study_get
from imaging.dicomweb.base import DicomWebView, dicom_audit_rows
from imaging.dicomweb.negotiation import accepted
from imaging.models import Image
from imaging.storage import blob_read

THUMBNAIL_SIZE = 128
_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}
_WINDOW_FUNCTIONS = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}


class BadParameter(ValueError):
    """A rendering parameter the client must correct (answer 400)."""


def _text(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain")


def rendered_media_type(accept: str) -> str | None:
    """image/jpeg or image/png, whichever the client prefers; None when it accepts neither."""
    for entry in accepted(accept):
        for media_type in _FORMATS:
            if entry.media_type in (media_type, "image/*", "*/*"):
                return media_type
    return None


def viewport(value: str | None, default: int | None) -> tuple[int, int] | None:
    if not value:
        return (default, default) if default else None
    try:
        width, height = (int(part) for part in value.split(",")[:2])
    except ValueError:
        raise BadParameter("viewport is vw,vh in pixels, e.g. viewport=512,512.") from None
    if not (0 < width <= MAX_RENDER_SIZE and 0 < height <= MAX_RENDER_SIZE):
        raise BadParameter(f"viewport sides are 1 to {MAX_RENDER_SIZE} pixels.")
    return width, height


def window(value: str | None) -> tuple[float, float, str] | None:
    if not value:
        return None
    parts = value.split(",")
    try:
        centre, width = float(parts[0]), float(parts[1])
        function = _WINDOW_FUNCTIONS[(parts[2] if len(parts) > 2 else "linear").strip().lower()]
    except (ValueError, IndexError, KeyError):
        raise BadParameter("window is centre,width[,linear|linear-exact|sigmoid], e.g. window=40,400.") from None
    if width <= 0 and function != "LINEAR_EXACT":
        raise BadParameter("The window width must be positive.")
    return centre, width, function


def quality(value: str | None) -> int:
    if not value:
        return 90
    try:
        number = int(value)
    except ValueError:
        raise BadParameter("quality is 1 to 100.") from None
    if not 1 <= number <= 100:
        raise BadParameter("quality is 1 to 100.")
    return number


def render(
    image: Image,
    *,
    frame: int | None,
    media_type: str,
    size: tuple[int, int] | None,
    voi: tuple[float, float, str] | None,
    jpeg_quality: int,
) -> bytes:
    """One frame (0-based; None for the default) as JPEG or PNG. Raises PixelDecodeError."""
    dataset = read_dataset(blob_read(image.file.name))
    picture = PILImage.fromarray(frame_uint8(dataset, frame, window=voi))
    if size:
        picture = ImageOps.contain(picture, size, PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    options = {"quality": jpeg_quality} if media_type == "image/jpeg" else {}
    picture.save(buffer, format=_FORMATS[media_type], **options)
    return buffer.getvalue()


class RenderedApi(DicomWebView):
    """GET .../rendered at study, series, instance and frame level."""

    required_roles = {"GET": allowed_roles(Resource.IMAGE, Act.READ)}
    thumbnail = False

    def get(
        self,
        request,
        study_uid: str,
        series_uid: str | None = None,
        instance_uid: str | None = None,
        frames: str | None = None,
    ):
        study = dicom_study_get(study_uid=study_uid)
        if study is None:
            return _text("No such study.", 404)
        images = [
            image
            for image in dicom_instances(study=study, series_uid=series_uid, instance_uid=instance_uid)
            if image.has_pixels
        ]
        if not images:
            return _text("No image to render here (a non-image instance is not rendered).", 404)
        if instance_uid:
            image = images[0]
        else:
            first_series = [image for image in images if image.series_instance_uid == images[0].series_instance_uid]
            image = first_series[len(first_series) // 2]
        frame = None
        if frames is not None:
            try:
                frame = int(frames) - 1
            except ValueError:
                return _text("A rendered frame is one frame number.", 400)
            if not 0 <= frame < image.number_of_frames:
                return _text("No such frame.", 404)
        media_type = rendered_media_type(request.META.get("HTTP_ACCEPT", ""))
        if media_type is None:
            return _text("Renderings are image/jpeg or image/png.", 406)
        params = request.query_params
        try:
            options = {
                "size": viewport(params.get("viewport"), THUMBNAIL_SIZE if self.thumbnail else None),
                "voi": window(params.get("window")),
                "jpeg_quality": quality(params.get("quality")),
            }
        except BadParameter as exc:
            return _text(str(exc), 400)
        try:
            data = render(image, frame=frame, media_type=media_type, **options)
        except PixelDecodeError as exc:
            return _text(f"The image cannot be rendered: {exc}", 406)
        detail = "WADO-RS thumbnail" if self.thumbnail else "WADO-RS rendered"
        audit_access(request, action=AuditAction.READ, rows=dicom_audit_rows([image]), detail=detail)
        return HttpResponse(data, content_type=media_type)


class ThumbnailApi(RenderedApi):
    """GET .../thumbnail at study, series, instance and frame level."""

    thumbnail = True
