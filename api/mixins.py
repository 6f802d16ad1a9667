"""Shared pieces of the API views."""

from collections.abc import Callable, Iterable
from typing import Any

from rest_framework import generics

from audit.access import audit_access, audited
from audit.models import AuditInterface


@audited(AuditInterface.API)
class AuditedListApi(generics.ListAPIView):
    """A filtered, paginated list that records one audit row per patient record on the page.

    ``audit_patient`` maps a row to its patient id (None for rows that are not patient data). Its
    subclasses inherit the audit declaration.
    """

    audit_patient: Callable[[Any], Any] | None = None

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        rows: Iterable = page if page is not None else queryset
        if self.audit_patient is not None:
            patient_of = type(self).audit_patient
            audit_access(self.request, rows=[(row, patient_of(row)) for row in rows], detail="list")
        return page
