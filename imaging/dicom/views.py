"""Downloads and renderings of DICOM-related content, for the pages and the API alike.

DRF views so that both a logged-in browser session and an API token work.
"""

from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from rest_framework.views import APIView

from accounts.policy import Act, Resource, allowed_roles
from audit.access import UI_OR_API, audit_access, audited
from audit.models import AuditAction
from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.dicom.export import study_export_filename, study_export_stream
from imaging.dicom.render import MAX_RENDER_SIZE, NotAnImage, image_display_png
from imaging.models import Image, Study


@audited(UI_OR_API)
class ImageRenderApi(APIView):
    """GET /images/<id>/render.png[?size=N]: the image as PNG, windowed like the AI sees it."""

    required_roles = {"GET": allowed_roles(Resource.IMAGE, Act.READ)}

    def get(self, request, image_id):
        image = get_object_or_404(Image.objects.select_related("study"), id=image_id)
        try:
            size = max(min(int(request.query_params.get("size") or 0), MAX_RENDER_SIZE), 0)
        except ValueError:
            size = 0
        # Every size is recorded: a "thumbnail" may be asked for at full resolution.
        audit_access(
            request,
            action=AuditAction.DOWNLOAD,
            obj=image,
            patient=image.study.patient_id,
            detail=f"render {size}" if size else "",
        )
        try:
            png = image_display_png(image, max_size=size or None)
        except NotAnImage as exc:
            return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")
        response = HttpResponse(png, content_type="image/png")
        # An image's content never changes after upload.
        response["Cache-Control"] = "private, max-age=86400"
        return response


@audited(UI_OR_API)
class InstanceFileApi(APIView):
    """GET /images/<id>/instance.dcm: a DICOM instance as received, byte for byte (e.g. a non-image one)."""

    required_roles = {"GET": allowed_roles(Resource.IMAGE, Act.READ)}

    def get(self, request, image_id):
        image = get_object_or_404(Image.objects.select_related("study"), id=image_id, content_type=DICOM_CONTENT_TYPE)
        audit_access(request, action=AuditAction.DOWNLOAD, obj=image, patient=image.study.patient_id, detail="file")
        # The stored name is content-addressed; the sender's filename is never used as a path.
        return FileResponse(
            default_storage.open(image.file.name, "rb"),
            content_type=DICOM_CONTENT_TYPE,
            as_attachment=True,
            filename=f"{image.sop_instance_uid or image.id}.dcm",
        )


@audited(UI_OR_API)
class StudyExportApi(APIView):
    """GET /studies/<id>/export.zip[?anonymised=1]: the study's files, optionally de-identified."""

    required_roles = {"GET": allowed_roles(Resource.STUDY, Act.READ)}

    def get(self, request, study_id):
        study = get_object_or_404(Study.objects.select_related("patient"), id=study_id)
        anonymised = request.query_params.get("anonymised", "").lower() in ("1", "true", "yes", "on")
        audit_access(
            request,
            action=AuditAction.DOWNLOAD,
            obj=study,
            patient=study.patient_id,
            detail="anonymised export" if anonymised else "export",
        )
        # Streamed file by file: a study of any size costs the memory of one instance.
        response = StreamingHttpResponse(
            study_export_stream(study=study, anonymised=anonymised), content_type="application/zip"
        )
        filename = study_export_filename(study, anonymised=anonymised)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
