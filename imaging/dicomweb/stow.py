"""STOW-RS: store instances sent as multipart/related application/dicom.

Storing needs the staff role. Each instance goes through ``imaging.intake`` on its own, like any
upload: one bad part fails alone.
"""

import logging

from django.conf import settings
from django.http import HttpResponse
from pydicom import Dataset
from pydicom.sequence import Sequence

from accounts.policy import Act, Resource, allowed_roles
from audit.access import audit_access
from audit.models import AuditAction
from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.dicom.parsing import read_dataset
from imaging.dicomweb.base import DicomWebView, dicom_audit_rows
from imaging.dicomweb.dicom_json import (
    dicom_json_response,
    dicomweb_url,
    failed_instance_item,
    stored_instance_item,
)
from imaging.dicomweb.multipart import MultipartError, parse_multipart_related
from imaging.intake import IncomingFile, files_intake
from imaging.models import ImageSource

logger = logging.getLogger(__name__)

# PS3.4 C-STORE / PS3.18 failure reasons.
FAILURE_PROCESSING = 0x0110
FAILURE_NOT_THIS_STUDY = 0xA900
FAILURE_CANNOT_UNDERSTAND = 0xC000


def _stow_limit() -> int:
    return getattr(settings, "MEDPORTAL_STOW_MAX_BYTES", 4 * settings.MEDPORTAL_MAX_UPLOAD_BYTES)


class StowRsApi(DicomWebView):
    """POST /dicomweb/studies[/{study}]: store instances sent as multipart/related application/dicom."""

    required_roles = {"POST": allowed_roles(Resource.IMAGE, Act.WRITE)}

    def post(self, request, study_uid: str | None = None):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > _stow_limit():
            return HttpResponse(f"The request is larger than {_stow_limit():,} bytes.", status=413)
        # Read from the stream: request.body would refuse anything over DATA_UPLOAD_MAX_MEMORY_SIZE.
        body = request._request.read(_stow_limit() + 1)
        if len(body) > _stow_limit():
            return HttpResponse(f"The request is larger than {_stow_limit():,} bytes.", status=413)
        try:
            root_type, parts = parse_multipart_related(body, request.META.get("CONTENT_TYPE", ""))
        except MultipartError as exc:
            status = 415 if "must be multipart/related" in str(exc) else 400
            return HttpResponse(str(exc), status=status, content_type="text/plain")
        if root_type and root_type.lower() != DICOM_CONTENT_TYPE:
            return HttpResponse(
                f"Only type={DICOM_CONTENT_TYPE} is accepted (not {root_type}).", status=415, content_type="text/plain"
            )
        if not parts:
            return HttpResponse("The request has no instances.", status=400, content_type="text/plain")

        stored, failed = Sequence(), Sequence()
        stored_images = []
        for part in parts:
            media_type = part.content_type.split(";")[0].strip().lower()
            if media_type and media_type != DICOM_CONTENT_TYPE:
                failed.append(_failure(part.data, FAILURE_CANNOT_UNDERSTAND, f"Unsupported part type {media_type}."))
                continue
            reason = self._store_one(request, part.data, study_uid, stored, stored_images)
            if reason is not None:
                failed.append(reason)

        audit_access(request, action=AuditAction.CREATE, rows=dicom_audit_rows(stored_images), detail="STOW-RS")
        response = Dataset()
        if study_uid:
            response.RetrieveURL = dicomweb_url(request, "study", study_uid=study_uid)
        elif len({item.get("StudyInstanceUID") for item in stored}) == 1:
            response.RetrieveURL = dicomweb_url(request, "study", study_uid=stored[0].StudyInstanceUID)
        for item in stored:
            del item.StudyInstanceUID  # only used above; not part of the response item
        response.ReferencedSOPSequence = stored
        if failed:
            response.FailedSOPSequence = failed
        status = 200 if not failed else (202 if stored else 409)
        return dicom_json_response(response.to_json_dict(), status=status)

    def _store_one(
        self, request, data: bytes, study_uid: str | None, stored: Sequence, stored_images: list
    ) -> Dataset | None:
        """Take in one instance on its own; return its failure item, or None once stored."""
        if study_uid and _study_uid_of(data) not in (None, study_uid):
            return _failure(data, FAILURE_NOT_THIS_STUDY, "The instance belongs to another study.")
        try:
            [intake] = files_intake(
                files=[IncomingFile.from_bytes(data)], source=ImageSource.STOW_RS, uploaded_by=request.user
            )
        except Exception as exc:
            logger.exception("STOW-RS could not store an instance")
            return _failure(data, FAILURE_PROCESSING, f"Processing failure: {exc}")
        if intake.fault:
            return _failure(data, FAILURE_PROCESSING, f"Processing failure: {intake.error}")
        if intake.held is not None:
            # Kept aside for an administrator: a record of this patient's data was made.
            audit_access(
                request,
                action=AuditAction.CREATE,
                obj=intake.held,
                patient=intake.held.patient_id,
                detail="STOW-RS held",
            )
            return _failure(data, FAILURE_CANNOT_UNDERSTAND, intake.peer_error)
        if not intake.stored:
            return _failure(data, FAILURE_CANNOT_UNDERSTAND, intake.error)
        stored.append(stored_instance_item(request, intake.image))
        stored_images.append(intake.image)
        return None


def _study_uid_of(data: bytes) -> str | None:
    """The part's Study Instance UID ("" when it has none), or None when it cannot be read at all."""
    try:
        return str(read_dataset(data).get("StudyInstanceUID", ""))
    except Exception:  # an unreadable part is for the intake to judge, like any file
        return None


def _failure(data: bytes, code: int, reason: str) -> Dataset:
    item = failed_instance_item(data, code)
    logger.info("STOW-RS failure %#06x for %s: %s", code, item.ReferencedSOPInstanceUID or "an unreadable part", reason)
    return item
