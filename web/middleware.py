"""Answers given before or instead of a view: a request body too large (413), a database outage (503)."""

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse

from api.exceptions import error_body

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
MESSAGE = (
    "The database is unavailable for a moment, so nothing was saved. "
    "Please try again in a few seconds; work already accepted is safe and will be processed."
)


class DatabaseUnavailableMiddleware:
    """Turn ``OperationalError``/``InterfaceError`` raised by a view into 503 Service Unavailable.

    With ATOMIC_REQUESTS the failed request rolled back as a whole, so a client can safely
    retry it. API clients get the API's JSON error shape; pages get a short plain message.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("Database unavailable during %s %s: %s", request.method, request.path, exception)
        if request.path.startswith("/api/"):
            response = JsonResponse(
                error_body(status_code=503, code="database_unavailable", message=MESSAGE), status=503
            )
        else:
            response = HttpResponse(
                f"<!doctype html><title>Service unavailable</title><h1>Service unavailable</h1><p>{MESSAGE}</p>",
                status=503,
                content_type="text/html; charset=utf-8",
            )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


# Where only DICOM instances are sent: their request bodies may hold an instance as large as
# MEDPORTAL_MAX_DICOM_BYTES.
DICOM_PATHS = ("/dicomweb/", "/dicom/import/")


class RequestSizeLimitMiddleware:
    """Refuse a request body over its limit with 413 before anything reads it.

    Django reads no more of a body than its Content-Length says (and nothing without one), so the
    header decides. A multipart body (the uploads, REST upload, STOW-RS) may be up to
    ``MEDPORTAL_MAX_REQUEST_BYTES`` (STOW-RS and Import DICOM: one instance of
    ``MEDPORTAL_MAX_DICOM_BYTES`` if that is more): it streams to temporary files and each file's
    size is checked by the intake before the file is read. Any other body (a form, JSON) is read whole into memory,
    by DRF's parsers too, so it may be no larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE``.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        multipart = request.META.get("CONTENT_TYPE", "").lower().startswith("multipart/")
        limit = settings.MEDPORTAL_MAX_REQUEST_BYTES
        if multipart and request.path.startswith(DICOM_PATHS):
            # Only DICOM comes this way (STOW-RS, Import DICOM): room for one instance of the DICOM limit.
            limit = max(limit, settings.MEDPORTAL_MAX_DICOM_BYTES + 1024 * 1024)
        if not multipart and settings.DATA_UPLOAD_MAX_MEMORY_SIZE is not None:
            limit = min(limit, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        if length <= limit:
            return self.get_response(request)
        logger.info("Refused a %s-byte body for %s %s", length, request.method, request.path)
        message = f"The request is {length:,} bytes; the limit is {limit:,} bytes."
        if multipart:
            message += " Send fewer or smaller files at once."
        if request.path.startswith("/api/"):
            return JsonResponse(error_body(status_code=413, code="request_too_large", message=message), status=413)
        return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
