"""Audit records for the pages: every page that shows or changes patient data calls one of these."""

from collections.abc import Iterable

from django.db import models
from django.http import HttpRequest

from audit.models import AuditAction, AuditInterface
from audit.services import audit_record, audit_record_many


def audit_page(
    request: HttpRequest, *, obj: models.Model, patient=None, action: AuditAction = AuditAction.READ, detail: str = ""
) -> None:
    audit_record(
        actor=request.user,
        action=action,
        obj=obj,
        patient=patient,
        interface=AuditInterface.UI,
        request=request,
        detail=detail,
    )


def audit_rows(request: HttpRequest, *, items: Iterable[tuple[models.Model, object]], detail: str) -> None:
    """One READ per row shown in a list, written in a single INSERT whatever the number of rows."""
    audit_record_many(
        actor=request.user,
        action=AuditAction.READ,
        items=items,
        interface=AuditInterface.UI,
        request=request,
        detail=detail,
    )
