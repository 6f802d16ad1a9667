"""STOW-RS: store instances sent as multipart/related application/dicom.

Storing needs the staff role. Each instance goes through ``imaging.intake`` on its own, like any
upload: one bad part fails alone.
"""

import io
import logging

from django.conf import settings
from django.http import HttpResponse
from pydicom import Dataset, dcmread
from pydicom.sequence import Sequence
from pydicom.uid import UID

from accounts.policy import Act, Resource, allowed_roles
from audit.access import audit_access
from audit.models import AuditAction
from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.dicom.parsing import looks_like_dicom
from imaging.dicomweb.base import DicomWebView, dicom_audit_rows
from imaging.dicomweb.dicom_json import (
    dicom_json_response,
    dicomweb_url,
    failed_instance_item,
    stored_instance_item,
)
from imaging.dicomweb.multipart import MultipartError, SpooledPart, close_parts, receive_multipart_related
from imaging.intake import IncomingFile, files_intake
from imaging.models import ImageSource

logger = logging.getLogger(__name__)

# PS3.18 10.5.3 / PS3.4 Annex GG failure reasons, as the FailureReason (0008,1197) of a failed instance.
FAILURE_PROCESSING = 0x0110  # our failure: sending it again may work
FAILURE_SOP_CLASS_NOT_SUPPORTED = 0x0122
FAILURE_OUT_OF_RESOURCES = 0xA700  # over the instance size limit
FAILURE_NOT_THIS_STUDY = 0xA900  # data set does not match: another study than the one posted to
FAILURE_CANNOT_UNDERSTAND = 0xC000
FAILURE_TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122

HEADER_BYTES = 64 * 1024


class StowRsApi(DicomWebView):
    """POST /dicomweb/studies[/{study}]: store instances sent as multipart/related application/dicom.

    The body is read from the request stream into one spooled file per part, never held whole:
    RequestSizeLimitMiddleware has refused a body over MEDPORTAL_MAX_REQUEST_BYTES before anything
    read it, and Django reads no further than its Content-Length.
    """

    required_roles = {"POST": allowed_roles(Resource.IMAGE, Act.WRITE)}

    def post(self, request, study_uid: str | None = None):
        try:
            root_type, parts = receive_multipart_related(request._request, request.META.get("CONTENT_TYPE", ""))
        except MultipartError as exc:
            status = 415 if "must be multipart/related" in str(exc) else 400
            return HttpResponse(str(exc), status=status, content_type="text/plain")
        try:
            return self._store_all(request, root_type, parts, study_uid)
        finally:
            close_parts(parts)

    def _store_all(self, request, root_type: str, parts: list[SpooledPart], study_uid: str | None):
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
                failed.append(_failure(part, FAILURE_CANNOT_UNDERSTAND, f"Unsupported part type {media_type}."))
                continue
            reason = self._store_one(request, part, study_uid, stored, stored_images)
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
        self, request, part: SpooledPart, study_uid: str | None, stored: Sequence, stored_images: list
    ) -> Dataset | None:
        """Take in one instance on its own; return its failure item, or None once stored."""
        if study_uid and _study_uid_of(part) not in (None, study_uid):
            return _failure(part, FAILURE_NOT_THIS_STUDY, "The instance belongs to another study.")
        # The intake checks the size first: a part over the limit is refused without being read.
        incoming = IncomingFile.from_fileobj(part.file, size=part.size)
        try:
            [intake] = files_intake(files=[incoming], source=ImageSource.STOW_RS, uploaded_by=request.user)
        except Exception as exc:
            logger.exception("STOW-RS could not store an instance")
            return _failure(part, FAILURE_PROCESSING, f"Processing failure: {exc}")
        if intake.fault:
            return _failure(part, FAILURE_PROCESSING, f"Processing failure: {intake.error}")
        if intake.held is not None:
            # Kept aside for an administrator: a record of this patient's data was made.
            audit_access(
                request,
                action=AuditAction.CREATE,
                obj=intake.held,
                patient=intake.held.patient_id,
                detail="STOW-RS held",
            )
            return _failure(part, FAILURE_CANNOT_UNDERSTAND, intake.peer_error)
        if not intake.stored:
            return _failure(part, _refusal_code(part), intake.error)
        stored.append(stored_instance_item(request, intake.image))
        stored_images.append(intake.image)
        return None


def _header(part: SpooledPart) -> Dataset | None:
    """The part's data set up to its pixels; None when it cannot be read at all.

    A part over the upload limit is refused unread: its first 64 KiB are enough to name it in the
    failure item.
    """
    over_limit = part.size > settings.MEDPORTAL_MAX_DICOM_BYTES
    data = part.read(HEADER_BYTES if over_limit else -1)
    if not looks_like_dicom(data):
        return None  # parsing anything else as DICOM would only make up elements
    if data[:4] == b"DICM":
        data = b"\0" * 128 + data
    try:
        return dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
    except Exception:  # an unreadable part is for the intake to judge, like any file
        return None


def _refusal_code(part: SpooledPart) -> int:
    """Why the intake refused a part, as a FailureReason: what the part is tells which rule it broke."""
    if part.size > settings.MEDPORTAL_MAX_DICOM_BYTES:
        return FAILURE_OUT_OF_RESOURCES
    header = _header(part)
    if header is None:
        return FAILURE_CANNOT_UNDERSTAND
    syntax = str(header.file_meta.get("TransferSyntaxUID", "") if hasattr(header, "file_meta") else "")
    if syntax and not UID(syntax).is_transfer_syntax:
        return FAILURE_TRANSFER_SYNTAX_NOT_SUPPORTED
    sop_class = UID(str(header.get("SOPClassUID", "")))
    if sop_class.name != sop_class and "Storage" not in sop_class.name:
        # A SOP class pydicom knows that is not one of storage (every storage SOP class is taken in).
        return FAILURE_SOP_CLASS_NOT_SUPPORTED
    return FAILURE_CANNOT_UNDERSTAND


def _study_uid_of(part: SpooledPart) -> str | None:
    """The part's Study Instance UID ("" when it has none), or None when it cannot be read at all."""
    header = _header(part)
    return None if header is None else str(header.get("StudyInstanceUID", ""))


def _failure(part: SpooledPart, code: int, reason: str) -> Dataset:
    item = failed_instance_item(_header(part), code)
    logger.info("STOW-RS failure %#06x for %s: %s", code, item.ReferencedSOPInstanceUID or "an unreadable part", reason)
    return item
