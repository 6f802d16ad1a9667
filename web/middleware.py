"""Answer a database outage with 503 and a clear message rather than a 500 page."""

import logging

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
