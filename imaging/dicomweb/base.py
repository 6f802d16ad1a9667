"""What every DICOMweb view shares: authentication and roles as for the API, DICOM JSON out."""

from collections.abc import Iterable

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from audit.models import AuditAction, AuditInterface
from audit.services import audit_record_many
from imaging.dicom.permissions import DicomRolePermission
from imaging.dicomweb.dicom_json import DICOM_JSON
from imaging.models import Image, Study


class DicomJsonRenderer(JSONRenderer):
    media_type = DICOM_JSON


class FirstRenderer(BaseContentNegotiation):
    """DICOMweb clients send Accept values DRF does not know; errors are always DICOM JSON-ish."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class DicomWebView(APIView):
    permission_classes = [DicomRolePermission]
    renderer_classes = [DicomJsonRenderer]
    parser_classes: list = []
    content_negotiation_class = FirstRenderer


def audit_dicomweb(request, *, action: AuditAction, records: Iterable[Study | Image], detail: str) -> None:
    """Record what a DICOMweb request returned or stored: one row per study or instance, one INSERT."""
    items = [
        (record, record.patient_id if isinstance(record, Study) else record.study.patient_id) for record in records
    ]
    audit_record_many(
        actor=request.user,
        action=action,
        items=items,
        interface=AuditInterface.DICOMWEB,
        request=request,
        detail=detail,
    )
