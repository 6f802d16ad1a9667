"""One JSON error shape for every API error.

    {"error": {"status": 400, "code": "invalid", "message": "...", "fields": {"mrn": ["..."]}}}

``fields`` maps each input field (dotted for nested input) to its messages; it is empty when the
error is not about a particular field.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from imaging.validation import ImageRejected

logger = logging.getLogger(__name__)

NON_FIELD = "non_field_errors"


class ImageRejectedError(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "image_rejected"
    default_detail = "The file was not accepted."


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The record is not in a state that allows this."


def _django_validation_detail(exc: DjangoValidationError):
    if hasattr(exc, "error_dict"):
        return {
            (NON_FIELD if field == "__all__" else field): [str(m) for e in errors for m in e.messages]
            for field, errors in exc.error_dict.items()
        }
    return list(exc.messages)


def _flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    """Nested DRF error details -> {"field.sub": ["message", ...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for field, messages in _flatten(value, name).items():
                out.setdefault(field, []).extend(messages)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix or NON_FIELD] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                for field, messages in _flatten(item, f"{prefix}.{index}" if prefix else str(index)).items():
                    out.setdefault(field, []).extend(messages)
    else:
        out[prefix or NON_FIELD] = [str(detail)]
    return out


def _code_of(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return exc.default_code


def error_body(*, status_code: int, code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"status": status_code, "code": code, "message": message, "fields": fields or {}}}


def exception_handler(exc, context):
    if isinstance(exc, ImageRejected):
        exc = ImageRejectedError(detail=str(exc))
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=_django_validation_detail(exc))
    elif isinstance(exc, PermissionError):
        # Services refuse a wrong role with PermissionError; that is a 403, never a 500.
        exc = exceptions.PermissionDenied(detail=str(exc) or None)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None

    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        only_general = list(fields) == [NON_FIELD]
        message = " ".join(fields[NON_FIELD]) if only_general else "The request has invalid fields."
        body = error_body(status_code=response.status_code, code="invalid", message=message, fields=fields)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        if isinstance(detail, dict | list):
            fields = _flatten(detail)
            message = " ".join(m for messages in fields.values() for m in messages)
        else:
            fields = {}
            message = str(detail)
        body = error_body(status_code=response.status_code, code=_code_of(exc), message=message, fields=fields)
    response.data = body
    return response
