"""QIDO-RS (PS3.18 10.6): search for studies, series and instances that came in as DICOM.

Every level can be searched across all studies (``/studies``, ``/series``, ``/instances``) or
under a study or series. A key MedPortal does not match on is ignored and named in a ``Warning:
299`` header, as is a truncated answer (more matches than ``limit``); ``includefield`` adds
attributes to the answer (``all`` for every one MedPortal has at that level).
"""

from dataclasses import dataclass, field

from django.http import HttpResponse
from pydicom import Dataset
from pydicom.datadict import dictionary_keyword, dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.valuerep import BYTES_VR
from rest_framework.exceptions import PermissionDenied

from accounts.policy import Act, Resource, allowed_roles, may
from audit.access import audit_access
from audit.models import AuditAction
from imaging.dicom.attributes import STUDY_ROW_FIELDS, study_attributes
from imaging.dicom.selectors import (
    dicom_instance_header,
    dicom_instance_search,
    dicom_instances,
    dicom_series_search,
    dicom_study_search,
    modalities_in_study,
)
from imaging.dicomweb.base import DicomWebView, dicom_audit_rows
from imaging.dicomweb.dicom_json import (
    dicom_json_response,
    instance_dataset,
    series_dataset,
    study_json,
    study_url_builder,
)
from imaging.models import Study

QIDO_DEFAULT_LIMIT = 100
QIDO_MAX_LIMIT = 1000
_CONTROL = {"limit", "offset", "includefield", "fuzzymatching"}
STUDY_KEYS = {
    "StudyInstanceUID",
    "PatientID",
    "PatientName",
    "AccessionNumber",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "ModalitiesInStudy",
    "StudyDescription",
}
SERIES_KEYS = {"SeriesInstanceUID", "Modality"}
INSTANCE_KEYS = {"SOPInstanceUID", "SOPClassUID"}
# What includefield=all adds, read from the header of the first instance (study, series level).
_STUDY_ALL = (
    "PatientAge",
    "OtherPatientIDs",
    "IssuerOfPatientID",
    "InstitutionName",
    "NameOfPhysiciansReadingStudy",
)
# What every study item has (imaging.dicom.attributes.study_values and the counts).
_STUDY_ANSWERED = {
    *STUDY_KEYS,
    "PatientBirthDate",
    "PatientSex",
    "ReferringPhysicianName",
    "SpecificCharacterSet",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "RetrieveURL",
}
# Other patient and study attributes includefield may ask for at study level, read from that header.
# Anything else (Modality, SeriesDescription, ...) is not a study attribute: ignored, with a Warning,
# so that a viewer's study list never costs a file read per study.
_STUDY_LEVEL = {
    *_STUDY_ALL,
    "PatientComments",
    "PatientSize",
    "PatientWeight",
    "EthnicGroup",
    "Occupation",
    "AdditionalPatientHistory",
    "AdmittingDiagnosesDescription",
    "OtherPatientNames",
    "PatientBirthTime",
    "IssuerOfAccessionNumberSequence",
    "ProcedureCodeSequence",
    "ReasonForPerformedProcedureCodeSequence",
    "PhysiciansOfRecord",
}
_SERIES_ALL = ("SeriesDate", "SeriesTime", "BodyPartExamined", "ProtocolName", "Laterality", "Manufacturer")


@dataclass
class Query:
    """A QIDO request's matching keys and controls, and what it had to ignore."""

    values: dict[str, str] = field(default_factory=dict)
    include: list[str] = field(default_factory=list)
    include_all: bool = False
    fuzzy: bool = False
    limit: int = QIDO_DEFAULT_LIMIT
    offset: int = 0
    warnings: list[str] = field(default_factory=list)

    def text(self, keyword: str) -> str:
        return self.values.get(keyword, "")

    def items(self, keyword: str) -> list[str]:
        """A multi-valued match (UID list matching, ModalitiesInStudy): backslash or comma separated."""
        value = self.text(keyword)
        return [v.strip() for v in value.replace("\\", ",").split(",") if v.strip()] if value else []


def _keyword(name: str) -> str:
    """A query key as a keyword: given by keyword, or by tag (00100020)."""
    if len(name) == 8:
        try:
            return dictionary_keyword(int(name, 16)) or name
        except (ValueError, KeyError):
            return name
    return name


def parse_query(request, supported: set[str]) -> Query:
    query = Query()
    params = request.query_params
    ignored = []
    for name in params:
        if name in _CONTROL:
            continue
        keyword = _keyword(name)
        value = params.get(name, "").strip()
        if not value:
            query.include.append(keyword)  # an empty key asks for the attribute to be returned
        elif keyword in supported:
            query.values[keyword] = value
        else:
            ignored.append(name)
    if ignored:
        query.warnings.append(f"These query keys are not supported and were ignored: {', '.join(sorted(ignored))}.")
    for value in params.getlist("includefield"):
        for name in value.split(","):
            if name.strip().lower() == "all":
                query.include_all = True
            elif name.strip():
                query.include.append(_keyword(name.strip()))
    unknown = [name for name in query.include if tag_for_keyword(name) is None]
    if unknown:
        query.warnings.append(f"These includefield attributes are unknown and were ignored: {', '.join(unknown)}.")
        query.include = [name for name in query.include if name not in unknown]
    query.fuzzy = params.get("fuzzymatching", "").lower() == "true"
    try:
        query.limit = int(params.get("limit") or QIDO_DEFAULT_LIMIT)
        query.offset = max(0, int(params.get("offset") or 0))
    except ValueError:
        query.warnings.append("limit and offset must be integers; the defaults were used.")
        query.limit, query.offset = QIDO_DEFAULT_LIMIT, 0
    if query.limit <= 0 or query.limit > QIDO_MAX_LIMIT:
        query.warnings.append(f"limit is 1 to {QIDO_MAX_LIMIT}; {min(max(query.limit, 1), QIDO_MAX_LIMIT)} was used.")
        query.limit = min(max(query.limit, 1), QIDO_MAX_LIMIT)
    if (query.text("PatientID") or query.text("PatientName")) and not may(request.user, Resource.PATIENT, Act.SEARCH):
        # Matching on the patient is a patient search, which accounts.policy keeps for staff.
        raise PermissionDenied("Searching by patient is for staff.")
    return query


def _studies(query: Query, study_uid: str | None = None):
    return dicom_study_search(
        study_uids=[study_uid] if study_uid else query.items("StudyInstanceUID"),
        patient_id=query.text("PatientID"),
        patient_name=query.text("PatientName"),
        accession_number=query.text("AccessionNumber"),
        study_date=query.text("StudyDate"),
        study_time=query.text("StudyTime"),
        study_id=query.text("StudyID"),
        modalities=[modality.upper() for modality in query.items("ModalitiesInStudy")],
        description=query.text("StudyDescription"),
        fuzzy_names=query.fuzzy,
    )


def _page(rows, query: Query) -> list:
    """One page of results; a Warning says when more match than were returned."""
    page = list(rows[query.offset : query.offset + query.limit + 1])
    if len(page) > query.limit:
        page = page[: query.limit]
        following = query.offset + query.limit
        query.warnings.append(f"The results are truncated: more match; ask again with offset={following}.")
    return page


def _add_from_header(item: Dataset, header: Dataset | None, keywords) -> None:
    """Attributes asked for by includefield: the instance's value, or empty when it has none."""
    for keyword in keywords:
        if keyword in item:
            continue
        element = header.data_element(keyword) if header is not None and keyword in header else None
        if element is not None and element.VR not in BYTES_VR:
            item.add(element)
        elif element is None:
            tag = tag_for_keyword(keyword)
            if tag is not None and keyword_for_tag(tag):
                item.add_new(tag, _vr(tag), None)


def _vr(tag: int) -> str:
    vr = dictionary_VR(tag)
    return vr.split(" or ")[0] if vr else "UN"


def _answer(request, items: list[Dataset | dict], query: Query) -> HttpResponse:
    if items:
        response = dicom_json_response([item if isinstance(item, dict) else item.to_json_dict() for item in items])
    else:
        response = HttpResponse(status=204)
    if query.warnings:
        host = request.get_host().split(":")[0]
        response["Warning"] = ", ".join(f'299 {host} "{message}"' for message in query.warnings)
    return response


class StudySearchApi(DicomWebView):
    """GET /dicomweb/studies: QIDO-RS study search."""

    required_roles = {"GET": allowed_roles(Resource.STUDY, Act.SEARCH)}

    def get(self, request):
        query = parse_query(request, STUDY_KEYS)
        # Rows rather than Study and Patient instances: a page of up to a thousand studies.
        counts = ("series_count", "instance_count", "instance_modalities")
        page = _page(_studies(query).values(*STUDY_ROW_FIELDS, *counts), query)
        items = []
        wanted = [*query.include, *(_STUDY_ALL if query.include_all else ())]
        other_level = [keyword for keyword in wanted if keyword not in _STUDY_LEVEL | _STUDY_ANSWERED]
        if other_level:
            query.warnings.append(f"Not study attributes, ignored at study level: {', '.join(other_level)}.")
            wanted = [keyword for keyword in wanted if keyword not in other_level]
        study_url = study_url_builder(request)
        for row in page:
            item = study_json(
                request,
                row,
                series_count=row["series_count"],
                instance_count=row["instance_count"],
                modalities=modalities_in_study(row["instance_modalities"]),
                study_url=study_url,
            )
            missing = [keyword for keyword in wanted if f"{tag_for_keyword(keyword):08X}" not in item]
            if missing:
                # Beyond MedPortal's records: read from the header of the study's first instance.
                first = dicom_instances(study=row["pk"]).first()
                extra = Dataset()
                _add_from_header(extra, dicom_instance_header(image=first) if first else None, missing)
                item.update(extra.to_json_dict())
            items.append(item)
        if page:
            rows = [(row["pk"], row["patient_id"]) for row in page]
            audit_access(request, action=AuditAction.READ, rows=rows, model=Study, detail="QIDO-RS studies")
        return _answer(request, items, query)


class SeriesSearchApi(DicomWebView):
    """GET /dicomweb/series and /dicomweb/studies/{study}/series: QIDO-RS series search."""

    required_roles = {"GET": allowed_roles(Resource.STUDY, Act.READ)}

    def get(self, request, study_uid: str | None = None):
        query = parse_query(request, STUDY_KEYS | SERIES_KEYS)
        rows = dicom_series_search(
            studies=_studies(query, study_uid),
            series_uids=query.items("SeriesInstanceUID"),
            modalities=[modality.upper() for modality in query.items("Modality")],
        )
        page = _page(rows, query)
        studies = Study.objects.select_related("patient").in_bulk({row["study_id"] for row in page})
        datasets = []
        for row in page:
            study = studies[row["study_id"]]
            first = dicom_instances(study=study, series_uid=row["series_instance_uid"] or "-").first()
            header = dicom_instance_header(image=first)
            item = series_dataset(
                request, study=study, series_uid=row["series_instance_uid"], header=header, instance_count=row["n"]
            )
            if study_uid is None:
                # Searched across studies: each series says which study (and patient) it belongs to.
                combined = study_attributes(study, modalities=[])
                del combined.ModalitiesInStudy
                for element in item:
                    combined.add(element)
                item = combined
            _add_from_header(item, header, [*query.include, *(_SERIES_ALL if query.include_all else ())])
            datasets.append(item)
        if page:
            audit_access(
                request, action=AuditAction.READ, rows=dicom_audit_rows(studies.values()), detail="QIDO-RS series"
            )
        return _answer(request, datasets, query)


class InstanceSearchApi(DicomWebView):
    """GET /dicomweb/instances, /studies/{study}/instances, /studies/{study}/series/{series}/instances."""

    required_roles = {"GET": allowed_roles(Resource.IMAGE, Act.SEARCH)}

    def get(self, request, study_uid: str | None = None, series_uid: str | None = None):
        query = parse_query(request, STUDY_KEYS | SERIES_KEYS | INSTANCE_KEYS)
        series_uids = query.items("SeriesInstanceUID")
        if series_uid:
            series_uids = [series_uid if series_uid != "-" else ""]
        images = dicom_instance_search(
            studies=_studies(query, study_uid),
            series_uids=series_uids,
            instance_uids=query.items("SOPInstanceUID"),
            sop_classes=query.items("SOPClassUID"),
            modalities=[modality.upper() for modality in query.items("Modality")],
        )
        page = _page(images, query)
        datasets = []
        for image in page:
            header = dicom_instance_header(image=image)
            item = instance_dataset(request, image=image, header=header)
            if query.include_all:
                for element in header:
                    if element.tag.group > 0x0002 and element.VR not in BYTES_VR and element.tag not in item:
                        item.add(element)
            _add_from_header(item, header, query.include)
            datasets.append(item)
        if page:
            audit_access(request, action=AuditAction.READ, rows=dicom_audit_rows(page), detail="QIDO-RS instances")
        return _answer(request, datasets, query)
