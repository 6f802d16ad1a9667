"""What every DICOMweb view shares: authentication and roles as for the API, DICOM JSON out."""

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from imaging.dicom.permissions import DicomRolePermission
from imaging.dicomweb.dicom_json import DICOM_JSON


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
