"""DICOMweb endpoints, so that a viewer (OHIF) or a PACS can store into and read from MedPortal.

They authenticate like the API (session or token); storing needs the staff role.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpResponse
from django.urls import reverse
from pydicom import Dataset, dcmread
from pydicom.datadict import dictionary_keyword, tag_for_keyword
from pydicom.sequence import Sequence
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.dicom.parsing import read_dataset
from imaging.dicom.permissions import DicomRolePermission
from imaging.dicom.services import dicom_ingest
from imaging.dicomweb.multipart import MultipartError, build_multipart_related, parse_multipart_related
from imaging.models import Image, ImageSource, Study
from imaging.storage import blob_read
from imaging.validation import ImageRejected

logger = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
# PS3.4 C-STORE / PS3.18 failure reasons.
FAILURE_PROCESSING = 0x0110
FAILURE_NOT_THIS_STUDY = 0xA900
FAILURE_CANNOT_UNDERSTAND = 0xC000
QIDO_DEFAULT_LIMIT = 100


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


def _json_response(payload, *, status: int = 200) -> HttpResponse:
    import json

    return HttpResponse(json.dumps(payload), status=status, content_type=DICOM_JSON)


def _url(request, name: str, **kwargs) -> str:
    return request.build_absolute_uri(reverse(f"dicomweb:{name}", kwargs=kwargs))


# --- STOW-RS -------------------------------------------------------------------------------


def _stow_limit() -> int:
    return getattr(settings, "MEDPORTAL_STOW_MAX_BYTES", 4 * settings.MEDPORTAL_MAX_UPLOAD_BYTES)


def _sop_ids(data: bytes) -> tuple[str, str]:
    """Best-effort SOP Class/Instance UIDs of a rejected part, for the failure list."""
    try:
        dataset = read_dataset(data)
        return str(dataset.get("SOPClassUID", "")), str(dataset.get("SOPInstanceUID", ""))
    except Exception:  # a part that cannot even be parsed has no UIDs to report
        return "", ""


class StowRsApi(DicomWebView):
    """POST /dicomweb/studies[/{study}]: store instances sent as multipart/related application/dicom."""

    def post(self, request, study_uid: str | None = None):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > _stow_limit():
            return HttpResponse(f"The request is larger than {_stow_limit():,} bytes.", status=413)
        # Read from the stream: request.body would refuse anything over DATA_UPLOAD_MAX_MEMORY_SIZE.
        body = request._request.read(_stow_limit() + 1)
        if len(body) > _stow_limit():
            return HttpResponse(f"The request is larger than {_stow_limit():,} bytes.", status=413)
        try:
            root_type, parts = parse_multipart_related(body, request.META.get("CONTENT_TYPE", ""))
        except MultipartError as exc:
            status = 415 if "must be multipart/related" in str(exc) else 400
            return HttpResponse(str(exc), status=status, content_type="text/plain")
        if root_type and root_type.lower() != DICOM_CONTENT_TYPE:
            return HttpResponse(
                f"Only type={DICOM_CONTENT_TYPE} is accepted (not {root_type}).", status=415, content_type="text/plain"
            )
        if not parts:
            return HttpResponse("The request has no instances.", status=400, content_type="text/plain")

        stored, failed = Sequence(), Sequence()
        for part in parts:
            media_type = part.content_type.split(";")[0].strip().lower()
            if media_type and media_type != DICOM_CONTENT_TYPE:
                failed.append(_failure(part.data, FAILURE_CANNOT_UNDERSTAND, f"Unsupported part type {media_type}."))
                continue
            reason = self._store_one(request, part.data, study_uid, stored)
            if reason is not None:
                failed.append(reason)

        response = Dataset()
        if study_uid:
            response.RetrieveURL = _url(request, "study", study_uid=study_uid)
        elif len({item.get("StudyInstanceUID") for item in stored}) == 1:
            response.RetrieveURL = _url(request, "study", study_uid=stored[0].StudyInstanceUID)
        for item in stored:
            del item.StudyInstanceUID  # only used above; not part of the response item
        response.ReferencedSOPSequence = stored
        if failed:
            response.FailedSOPSequence = failed
        status = 200 if not failed else (202 if stored else 409)
        return _json_response(response.to_json_dict(), status=status)

    def _store_one(self, request, data: bytes, study_uid: str | None, stored: Sequence) -> Dataset | None:
        try:
            with transaction.atomic():
                if study_uid:
                    dataset_study = str(read_dataset(data).get("StudyInstanceUID", "")) if data else ""
                    if dataset_study != study_uid:
                        return _failure(data, FAILURE_NOT_THIS_STUDY, "The instance belongs to another study.")
                result = dicom_ingest(data=data, source=ImageSource.STOW_RS, uploaded_by=request.user)
        except ImageRejected as exc:
            return _failure(data, FAILURE_CANNOT_UNDERSTAND, str(exc))
        except Exception as exc:
            logger.exception("STOW-RS could not store an instance")
            return _failure(data, FAILURE_PROCESSING, f"Processing failure: {exc}")
        image = result.image
        item = Dataset()
        item.ReferencedSOPClassUID = image.sop_class_uid
        item.ReferencedSOPInstanceUID = image.sop_instance_uid
        item.RetrieveURL = _url(
            request,
            "instance",
            study_uid=image.study.study_instance_uid,
            series_uid=image.series_instance_uid or "-",
            instance_uid=image.sop_instance_uid,
        )
        item.StudyInstanceUID = image.study.study_instance_uid
        stored.append(item)
        return None


def _failure(data: bytes, code: int, reason: str) -> Dataset:
    sop_class, sop_instance = _sop_ids(data)
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    item.FailureReason = code
    logger.info("STOW-RS failure %#06x for %s: %s", code, sop_instance or "an unreadable part", reason)
    return item


# --- QIDO-RS -------------------------------------------------------------------------------


def _query_value(request, keyword: str) -> str:
    """A QIDO match value, given by keyword or by tag (e.g. 00100020)."""
    value = request.query_params.get(keyword)
    if value is None:
        tag = tag_for_keyword(keyword)
        value = request.query_params.get(f"{tag:08X}") if tag is not None else None
    return (value or "").strip()


def _wildcard(field: str, value: str) -> Q:
    # QIDO wildcards: '*' any run, '?' one character. Only the common forms are needed here.
    core = value.replace("?", "*")
    if core.startswith("*") and core.endswith("*") and len(core) > 1:
        return Q(**{f"{field}__icontains": core.strip("*")})
    if core.endswith("*"):
        return Q(**{f"{field}__istartswith": core.rstrip("*")})
    if core.startswith("*"):
        return Q(**{f"{field}__iendswith": core.lstrip("*")})
    return Q(**{f"{field}__iexact": core})


def _date_range(value: str) -> Q:
    def parse(text: str):
        import datetime

        text = text.strip()
        return datetime.date(int(text[0:4]), int(text[4:6]), int(text[6:8])) if len(text) >= 8 else None

    try:
        if "-" in value:
            start, end = (parse(side) for side in value.split("-", 1))
            query = Q()
            if start:
                query &= Q(study_date__gte=start)
            if end:
                query &= Q(study_date__lte=end)
            return query
        return Q(study_date=parse(value))
    except ValueError:
        return Q(pk__in=[])


def _limit_offset(request) -> tuple[int, int]:
    try:
        limit = max(0, min(int(request.query_params.get("limit") or QIDO_DEFAULT_LIMIT), 1000))
        offset = max(0, int(request.query_params.get("offset") or 0))
    except ValueError:
        return QIDO_DEFAULT_LIMIT, 0
    return limit or QIDO_DEFAULT_LIMIT, offset


def _dicom_studies() -> QuerySet:
    return Study.objects.filter(study_instance_uid__isnull=False).select_related("patient")


def _person_name(family: str, given: str) -> str:
    return f"{family}^{given}".rstrip("^")


def _study_json(request, study: Study, *, series_count: int, instance_count: int) -> dict:
    patient = study.patient
    item = Dataset()
    item.SpecificCharacterSet = "ISO_IR 192"
    item.StudyDate = study.study_date.strftime("%Y%m%d") if study.study_date else ""
    item.StudyTime = ""
    item.AccessionNumber = study.accession_number[:16]
    item.ModalitiesInStudy = [study.modality]
    item.ReferringPhysicianName = study.referring_physician.replace(" ", "^")
    item.PatientName = _person_name(patient.family_name, patient.given_name)
    item.PatientID = patient.mrn
    item.PatientBirthDate = patient.birth_date.strftime("%Y%m%d") if patient.birth_date else ""
    item.PatientSex = patient.sex if patient.sex in ("M", "F", "O") else ""
    item.StudyInstanceUID = study.study_instance_uid
    item.StudyID = ""
    item.StudyDescription = study.description[:64]
    item.NumberOfStudyRelatedSeries = series_count
    item.NumberOfStudyRelatedInstances = instance_count
    item.RetrieveURL = _url(request, "study", study_uid=study.study_instance_uid)
    return item.to_json_dict()


class StudiesApi(StowRsApi):
    """GET /dicomweb/studies: QIDO-RS study search. POST: STOW-RS."""

    def get(self, request):
        studies = _dicom_studies()
        if value := _query_value(request, "StudyInstanceUID"):
            studies = studies.filter(study_instance_uid__in=[v.strip() for v in value.replace("\\", ",").split(",")])
        if value := _query_value(request, "PatientID"):
            studies = studies.filter(_wildcard("patient__mrn", value))
        if value := _query_value(request, "PatientName"):
            family, _, given = value.partition("^")
            if family and family != "*":
                studies = studies.filter(_wildcard("patient__family_name", family))
            if given and given != "*":
                studies = studies.filter(_wildcard("patient__given_name", given))
        if value := _query_value(request, "AccessionNumber"):
            studies = studies.filter(_wildcard("accession_number", value))
        if value := _query_value(request, "StudyDate"):
            studies = studies.filter(_date_range(value))
        if value := _query_value(request, "ModalitiesInStudy"):
            studies = studies.filter(modality__in=[v.strip().upper() for v in value.replace("\\", ",").split(",")])
        if value := _query_value(request, "StudyDescription"):
            studies = studies.filter(_wildcard("description", value))
        studies = studies.annotate(
            instance_count=Count("images", filter=Q(images__sop_instance_uid__isnull=False)),
            series_count=Count(
                "images__series_instance_uid", filter=Q(images__sop_instance_uid__isnull=False), distinct=True
            ),
        ).order_by("-study_date", "-created_at")
        limit, offset = _limit_offset(request)
        page = list(studies[offset : offset + limit])
        if not page:
            return HttpResponse(status=204)
        return _json_response(
            [
                _study_json(request, study, series_count=study.series_count, instance_count=study.instance_count)
                for study in page
            ]
        )


def _study_or_none(study_uid: str) -> Study | None:
    return _dicom_studies().filter(study_instance_uid=study_uid).first()


def _instances(study: Study, series_uid: str | None = None, instance_uid: str | None = None) -> QuerySet:
    images = study.images.filter(content_type=DICOM_CONTENT_TYPE, sop_instance_uid__isnull=False)
    if series_uid:
        images = images.filter(series_instance_uid="" if series_uid == "-" else series_uid)
    if instance_uid:
        images = images.filter(sop_instance_uid=instance_uid)
    return images.order_by("series_instance_uid", "uploaded_at")


def _header(image: Image) -> Dataset:
    import io

    return dcmread(io.BytesIO(blob_read(image.file.name)), force=True, stop_before_pixels=True)


class SeriesSearchApi(DicomWebView):
    """GET /dicomweb/studies/{study}/series: QIDO-RS series search."""

    def get(self, request, study_uid: str):
        study = _study_or_none(study_uid)
        if study is None:
            return HttpResponse(status=204)
        wanted_modality = _query_value(request, "Modality").upper()
        wanted_series = _query_value(request, "SeriesInstanceUID")
        result = []
        rows = _instances(study).values("series_instance_uid").annotate(n=Count("id")).order_by("series_instance_uid")
        for row in rows:
            series_uid = row["series_instance_uid"]
            if wanted_series and series_uid != wanted_series:
                continue
            header = _header(_instances(study, series_uid or "-").first())
            modality = str(header.get("Modality", ""))
            if wanted_modality and modality.upper() != wanted_modality:
                continue
            item = Dataset()
            item.SpecificCharacterSet = "ISO_IR 192"
            item.Modality = modality
            item.SeriesInstanceUID = series_uid
            item.SeriesNumber = header.get("SeriesNumber", "")
            item.SeriesDescription = str(header.get("SeriesDescription", ""))
            item.NumberOfSeriesRelatedInstances = row["n"]
            item.RetrieveURL = _url(request, "series", study_uid=study_uid, series_uid=series_uid or "-")
            result.append(item.to_json_dict())
        return _json_response(result) if result else HttpResponse(status=204)


class InstanceSearchApi(DicomWebView):
    """GET /dicomweb/studies/{study}[/series/{series}]/instances: QIDO-RS instance search."""

    def get(self, request, study_uid: str, series_uid: str | None = None):
        study = _study_or_none(study_uid)
        if study is None:
            return HttpResponse(status=204)
        images = _instances(study, series_uid, _query_value(request, "SOPInstanceUID") or None)
        limit, offset = _limit_offset(request)
        result = []
        for image in images[offset : offset + limit]:
            header = _header(image)
            item = Dataset()
            item.SpecificCharacterSet = "ISO_IR 192"
            item.StudyInstanceUID = study_uid
            item.SeriesInstanceUID = image.series_instance_uid
            item.SOPClassUID = image.sop_class_uid
            item.SOPInstanceUID = image.sop_instance_uid
            item.InstanceNumber = header.get("InstanceNumber", "")
            item.Rows = image.height
            item.Columns = image.width
            item.NumberOfFrames = image.number_of_frames
            item.RetrieveURL = _url(
                request,
                "instance",
                study_uid=study_uid,
                series_uid=image.series_instance_uid or "-",
                instance_uid=image.sop_instance_uid,
            )
            result.append(item.to_json_dict())
        return _json_response(result) if result else HttpResponse(status=204)


# --- WADO-RS -------------------------------------------------------------------------------


def _part_type(image: Image) -> str:
    return f"{DICOM_CONTENT_TYPE}; transfer-syntax={image.transfer_syntax_uid}"


class RetrieveApi(DicomWebView):
    """GET /dicomweb/studies/{study}[/series/{series}[/instances/{instance}]]: the original instances."""

    def get(self, request, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None):
        study = _study_or_none(study_uid)
        if study is None:
            return HttpResponse("No such study.", status=404, content_type="text/plain")
        images = list(_instances(study, series_uid, instance_uid))
        if not images:
            return HttpResponse("No such instances.", status=404, content_type="text/plain")
        accept = request.META.get("HTTP_ACCEPT", "")
        if accept and "application/dicom" not in accept and "*/*" not in accept and "multipart/related" not in accept:
            return HttpResponse(
                'Instances are sent as multipart/related; type="application/dicom".',
                status=406,
                content_type="text/plain",
            )
        body, content_type = build_multipart_related(
            [(_part_type(image), blob_read(image.file.name)) for image in images], root_type=DICOM_CONTENT_TYPE
        )
        return HttpResponse(body, content_type=content_type)


def _bulk_uri(request, image: Image):
    instance_url = _url(
        request,
        "instance",
        study_uid=image.study.study_instance_uid,
        series_uid=image.series_instance_uid or "-",
        instance_uid=image.sop_instance_uid,
    )

    def handler(element) -> str:
        keyword = dictionary_keyword(element.tag) if element.tag.is_private is False else ""
        if keyword == "PixelData":
            return f"{instance_url}/frames/1"
        return instance_url

    return handler


class MetadataApi(DicomWebView):
    """GET .../metadata: the instances' attributes as DICOM JSON, bulk data by reference."""

    def get(self, request, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None):
        study = _study_or_none(study_uid)
        if study is None:
            return HttpResponse("No such study.", status=404, content_type="text/plain")
        images = list(_instances(study, series_uid, instance_uid))
        if not images:
            return HttpResponse("No such instances.", status=404, content_type="text/plain")
        result = []
        for image in images:
            dataset = read_dataset(blob_read(image.file.name))
            result.append(
                dataset.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=_bulk_uri(request, image))
            )
        return _json_response(result)


class FramesApi(DicomWebView):
    """GET .../instances/{instance}/frames/{list}: frame pixel data (uncompressed, or the original bitstream)."""

    def get(self, request, study_uid: str, series_uid: str, instance_uid: str, frames: str):
        from pydicom.encaps import generate_frames
        from pydicom.pixels import pixel_array

        study = _study_or_none(study_uid)
        image = _instances(study, series_uid, instance_uid).first() if study else None
        if image is None:
            return HttpResponse("No such instance.", status=404, content_type="text/plain")
        try:
            numbers = [int(number) for number in frames.split(",")]
        except ValueError:
            return HttpResponse("Frame numbers must be integers.", status=400, content_type="text/plain")
        if any(number < 1 or number > image.number_of_frames for number in numbers):
            return HttpResponse("No such frame.", status=404, content_type="text/plain")
        dataset = read_dataset(blob_read(image.file.name))
        syntax = dataset.file_meta.TransferSyntaxUID
        parts = []
        if syntax.is_compressed:
            encoded = list(generate_frames(dataset.PixelData, number_of_frames=image.number_of_frames))
            parts = [(f"application/octet-stream; transfer-syntax={syntax}", encoded[n - 1]) for n in numbers]
        else:
            for number in numbers:
                array = pixel_array(dataset, index=number - 1, raw=True)
                parts.append(("application/octet-stream", array.astype(array.dtype.newbyteorder("<")).tobytes()))
        body, content_type = build_multipart_related(parts, root_type="application/octet-stream")
        return HttpResponse(body, content_type=content_type)


class StudyApi(StowRsApi):
    """/dicomweb/studies/{study}: GET retrieves the study (WADO-RS), POST stores into it (STOW-RS)."""

    get = RetrieveApi.get
