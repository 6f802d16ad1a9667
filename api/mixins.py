"""Shared pieces of the API views."""

from collections.abc import Callable, Iterable
from typing import Any

from django.db import models
from rest_framework import generics

from audit.models import AuditAction, AuditInterface
from audit.services import audit_record, audit_record_many


def audit_api(request, *, action: AuditAction, obj: models.Model, patient=None, detail: str = "") -> None:
    audit_record(
        actor=request.user,
        action=action,
        obj=obj,
        patient=patient,
        interface=AuditInterface.API,
        request=request,
        detail=detail,
    )


class AuditedListApi(generics.ListAPIView):
    """A filtered, paginated list that records one audit row per patient record on the page.

    ``audit_patient`` maps a row to its patient id (None for rows that are not patient data).
    """

    audit_patient: Callable[[Any], Any] | None = None

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        rows: Iterable = page if page is not None else queryset
        if self.audit_patient is not None:
            patient_of = type(self).audit_patient
            audit_record_many(
                actor=self.request.user,
                action=AuditAction.READ,
                items=[(row, patient_of(row)) for row in rows],
                interface=AuditInterface.API,
                request=self.request,
                detail="list",
            )
        return page
