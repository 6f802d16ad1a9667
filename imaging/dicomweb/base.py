"""What every DICOMweb view shares: authentication and roles as for the API (each view's ``required_roles``,
from accounts.policy), DICOM JSON out."""

from collections.abc import Iterable

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from api.throttling import DicomWebTokenRateThrottle
from audit.access import audited
from audit.models import AuditInterface
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


@audited(AuditInterface.DICOMWEB)
class DicomWebView(APIView):
    """Every DICOMweb service records what it returned or stored (its subclasses inherit the declaration)."""

    renderer_classes = [DicomJsonRenderer]
    throttle_classes = [DicomWebTokenRateThrottle]
    parser_classes: list = []
    content_negotiation_class = FirstRenderer


def dicom_audit_rows(records: Iterable[Study | Image]) -> list[tuple[Study | Image, object]]:
    """What a DICOMweb request returned or stored, as ``audit_access`` rows: each study or instance and its patient."""
    return [(record, record.patient_id if isinstance(record, Study) else record.study.patient_id) for record in records]
