"""QIDO-RS: search for studies, series and instances that came in as DICOM."""

from django.http import HttpResponse
from pydicom.datadict import tag_for_keyword
from rest_framework.exceptions import PermissionDenied

from accounts.policy import Act, Resource, allowed_roles, may
from audit.access import audit_access
from audit.models import AuditAction
from imaging.dicom.selectors import (
    dicom_instance_header,
    dicom_instances,
    dicom_series_counts,
    dicom_study_get,
    dicom_study_search,
)
from imaging.dicomweb.base import DicomWebView, dicom_audit_rows
from imaging.dicomweb.dicom_json import dicom_json_response, instance_json, series_json, study_json

QIDO_DEFAULT_LIMIT = 100


def _query_value(request, keyword: str) -> str:
    """A QIDO match value, given by keyword or by tag (e.g. 00100020)."""
    value = request.query_params.get(keyword)
    if value is None:
        tag = tag_for_keyword(keyword)
        value = request.query_params.get(f"{tag:08X}") if tag is not None else None
    return (value or "").strip()


def _query_list(request, keyword: str) -> list[str]:
    """A multi-valued match (UID list matching): backslash or comma separated."""
    value = _query_value(request, keyword)
    return [v.strip() for v in value.replace("\\", ",").split(",")] if value else []


def _limit_offset(request) -> tuple[int, int]:
    try:
        limit = max(0, min(int(request.query_params.get("limit") or QIDO_DEFAULT_LIMIT), 1000))
        offset = max(0, int(request.query_params.get("offset") or 0))
    except ValueError:
        return QIDO_DEFAULT_LIMIT, 0
    return limit or QIDO_DEFAULT_LIMIT, offset


class StudySearchApi(DicomWebView):
    """GET /dicomweb/studies: QIDO-RS study search."""

    required_roles = {"GET": allowed_roles(Resource.STUDY, Act.SEARCH)}

    def get(self, request):
        if (_query_value(request, "PatientID") or _query_value(request, "PatientName")) and not may(
            request.user, Resource.PATIENT, Act.SEARCH
        ):
            # Matching on the patient is a patient search, which accounts.policy keeps for staff.
            raise PermissionDenied("Searching by patient is for staff.")
        studies = dicom_study_search(
            study_uids=_query_list(request, "StudyInstanceUID"),
            patient_id=_query_value(request, "PatientID"),
            patient_name=_query_value(request, "PatientName"),
            accession_number=_query_value(request, "AccessionNumber"),
            study_date=_query_value(request, "StudyDate"),
            modalities=[modality.upper() for modality in _query_list(request, "ModalitiesInStudy")],
            description=_query_value(request, "StudyDescription"),
        )
        limit, offset = _limit_offset(request)
        page = list(studies[offset : offset + limit])
        if not page:
            return HttpResponse(status=204)
        audit_access(request, action=AuditAction.READ, rows=dicom_audit_rows(page), detail="QIDO-RS studies")
        return dicom_json_response(
            [
                study_json(request, study, series_count=study.series_count, instance_count=study.instance_count)
                for study in page
            ]
        )


class SeriesSearchApi(DicomWebView):
    """GET /dicomweb/studies/{study}/series: QIDO-RS series search."""

    required_roles = {"GET": allowed_roles(Resource.STUDY, Act.READ)}

    def get(self, request, study_uid: str):
        study = dicom_study_get(study_uid=study_uid)
        if study is None:
            return HttpResponse(status=204)
        wanted_modality = _query_value(request, "Modality").upper()
        wanted_series = _query_value(request, "SeriesInstanceUID")
        result = []
        for row in dicom_series_counts(study=study):
            series_uid = row["series_instance_uid"]
            if wanted_series and series_uid != wanted_series:
                continue
            header = dicom_instance_header(image=dicom_instances(study=study, series_uid=series_uid or "-").first())
            if wanted_modality and str(header.get("Modality", "")).upper() != wanted_modality:
                continue
            result.append(
                series_json(request, study_uid=study_uid, series_uid=series_uid, header=header, instance_count=row["n"])
            )
        if not result:
            return HttpResponse(status=204)
        audit_access(request, action=AuditAction.READ, rows=dicom_audit_rows([study]), detail="QIDO-RS series")
        return dicom_json_response(result)


class InstanceSearchApi(DicomWebView):
    """GET /dicomweb/studies/{study}[/series/{series}]/instances: QIDO-RS instance search."""

    required_roles = {"GET": allowed_roles(Resource.IMAGE, Act.SEARCH)}

    def get(self, request, study_uid: str, series_uid: str | None = None):
        study = dicom_study_get(study_uid=study_uid)
        if study is None:
            return HttpResponse(status=204)
        images = dicom_instances(
            study=study, series_uid=series_uid, instance_uid=_query_value(request, "SOPInstanceUID") or None
        )
        limit, offset = _limit_offset(request)
        page = list(images[offset : offset + limit])
        if not page:
            return HttpResponse(status=204)
        audit_access(request, action=AuditAction.READ, rows=dicom_audit_rows(page), detail="QIDO-RS instances")
        return dicom_json_response(
            [
                instance_json(request, study_uid=study_uid, image=image, header=dicom_instance_header(image=image))
                for image in page
            ]
        )
