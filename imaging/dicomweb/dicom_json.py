"""DICOM JSON (PS3.18 F.2) for DICOMweb answers: what a viewer or PACS reads back from MedPortal."""

import functools
import json
import re
from collections.abc import Callable

from django.http import HttpResponse
from django.urls import reverse
from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.uid import UID

from imaging.dicom.attributes import CHARACTER_SET, attributes_dataset, study_row, study_row_values
from imaging.models import Image, Study

DICOM_JSON = "application/dicom+json"


def dicom_json_response(payload, *, status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(payload), status=status, content_type=DICOM_JSON)


def dicomweb_url(request, name: str, **kwargs) -> str:
    return request.build_absolute_uri(reverse(f"dicomweb:{name}", kwargs=kwargs))


# A UID of these characters is written into a URL as it is (neither reverse() nor the absolute URI quote it).
_URL_SAFE_UID = re.compile(r"[0-9A-Za-z._-]+")


def study_url_builder(request) -> Callable[[str], str]:
    """``dicomweb_url(request, "study", study_uid=uid)`` for many studies of one answer.

    A QIDO-RS page holds up to a thousand studies; reversing the URL for each (a resolver look-up and
    the active language per call) cost more than building the rest of the item. The URL is reversed
    once and each UID appended; a UID that would need quoting takes the full path.
    """
    prefix = dicomweb_url(request, "study", study_uid="0").removesuffix("0")

    def url(study_uid: str) -> str:
        if _URL_SAFE_UID.fullmatch(study_uid):
            return prefix + study_uid
        return dicomweb_url(request, "study", study_uid=study_uid)

    return url


def instance_url(request, image: Image) -> str:
    return dicomweb_url(
        request,
        "instance",
        study_uid=image.study.study_instance_uid,
        series_uid=image.series_instance_uid or "-",
        instance_uid=image.sop_instance_uid,
    )


def study_json(
    request,
    study: Study | dict,
    *,
    series_count: int,
    instance_count: int,
    modalities: list[str] | None = None,
    study_url: Callable[[str], str] | None = None,
) -> dict:
    """A study as QIDO-RS returns it (PS3.18 table 10.6.3-3), from MedPortal's records.

    ``study`` is a Study or its ``values(*STUDY_ROW_FIELDS)`` row (``imaging.dicom.attributes``), which
    a page of studies reads without building model instances. ``study_url`` (``study_url_builder``)
    serves a page of studies; without it the URL is reversed.
    """
    row = study if isinstance(study, dict) else study_row(study)
    retrieve_url = (
        study_url(row["study_instance_uid"])
        if study_url is not None
        else dicomweb_url(request, "study", study_uid=row["study_instance_uid"])
    )
    values = [
        *study_row_values(row, modalities=modalities),
        ("SpecificCharacterSet", CHARACTER_SET),
        ("NumberOfStudyRelatedSeries", series_count),
        ("NumberOfStudyRelatedInstances", instance_count),
        ("RetrieveURL", retrieve_url),
    ]
    return plain_json(values) or attributes_dataset(values).to_json_dict()


@functools.cache
def _tag_and_vr(keyword: str) -> tuple[str, str]:
    tag = tag_for_keyword(keyword)
    return f"{tag:08X}", dictionary_VR(tag)


def _plain_element(vr: str, value: object) -> dict | None:
    """``value`` as pydicom's ``to_json_dict`` writes it, or None when pydicom would read more into it."""
    if isinstance(value, str):  # first: most values of a study item are texts
        if "\\" in value or (vr == "PN" and "=" in value):
            return None  # several values, or a name's ideographic and phonetic groups
        if not value:
            return {"vr": vr}
        return {"vr": vr, "Value": [{"Alphabetic": value} if vr == "PN" else value]}
    if isinstance(value, int) and not isinstance(value, bool) and vr == "IS":
        return {"vr": vr, "Value": [value]}
    if isinstance(value, list):
        if not value or not all(isinstance(v, str) and v and "\\" not in v for v in value) or vr == "PN":
            return None
        return {"vr": vr, "Value": list(value)}
    return None


def plain_json(values: list[tuple[str, object]]) -> dict | None:
    """DICOM JSON for (keyword, value) pairs of plain text, names and counts, without a pydicom Dataset.

    QIDO-RS answers a study search with up to a thousand such items; built through a Dataset (a
    data element, a VR check and a conversion per attribute, then the same again to JSON) they cost
    as much as the rest of the request. The result equals ``Dataset.to_json_dict`` (tested); a value
    pydicom would split or interpret (a backslash, a name's ``=`` groups) returns None, so the
    caller builds that item the slow way.
    """
    item = {}
    for keyword, value in values:
        tag, vr = _tag_and_vr(keyword)
        element = _plain_element(vr, value)
        if element is None:
            return None
        item[tag] = element
    return item


def series_dataset(request, *, study: Study, series_uid: str, header: Dataset, instance_count: int) -> Dataset:
    """A series (PS3.18 table 10.6.3-4), described by the header of its first instance."""
    item = Dataset()
    item.SpecificCharacterSet = CHARACTER_SET
    item.StudyInstanceUID = study.study_instance_uid
    item.Modality = str(header.get("Modality", ""))
    item.SeriesInstanceUID = series_uid
    item.SeriesNumber = header.get("SeriesNumber", "")
    item.SeriesDescription = str(header.get("SeriesDescription", ""))
    item.PerformedProcedureStepStartDate = str(header.get("PerformedProcedureStepStartDate", ""))
    item.PerformedProcedureStepStartTime = str(header.get("PerformedProcedureStepStartTime", ""))
    item.NumberOfSeriesRelatedInstances = instance_count
    item.RetrieveURL = dicomweb_url(request, "series", study_uid=study.study_instance_uid, series_uid=series_uid or "-")
    return item


def instance_dataset(request, *, image: Image, header: Dataset) -> Dataset:
    """An instance (PS3.18 table 10.6.3-5)."""
    item = Dataset()
    item.SpecificCharacterSet = CHARACTER_SET
    item.StudyInstanceUID = image.study.study_instance_uid
    item.SeriesInstanceUID = image.series_instance_uid
    item.Modality = image.modality or str(header.get("Modality", ""))
    item.SOPClassUID = image.sop_class_uid
    item.SOPInstanceUID = image.sop_instance_uid
    item.InstanceAvailability = "ONLINE"
    item.InstanceNumber = header.get("InstanceNumber", "")
    if image.width and image.height:
        item.Rows = image.height
        item.Columns = image.width
        item.NumberOfFrames = image.number_of_frames
    item.RetrieveURL = instance_url(request, image)
    return item


def _bulk_paths(dataset: Dataset, prefix: str = "") -> dict[int, str]:
    """Each element's path in the data set (tags and item indexes), keyed by the element object."""
    paths = {}
    for element in dataset:
        path = f"{prefix}{element.tag:08X}"
        paths[id(element)] = path
        if element.VR == "SQ":
            for index, item in enumerate(element.value):
                paths.update(_bulk_paths(item, f"{path}/{index}/"))
    return paths


def metadata_json(request, *, image: Image, dataset: Dataset) -> dict:
    """All attributes of an instance; binary values over 1 KiB (the pixels above all) by BulkDataURI.

    Each URI names the value itself (``.../bulkdata/{tag}[/{item}/{tag}...]``), so a client can fetch
    an overlay, a waveform or an encapsulated document alone.
    """
    base = f"{instance_url(request, image)}/bulkdata/"
    paths = _bulk_paths(dataset)

    def bulk_uri(element) -> str:
        return base + paths.get(id(element), f"{element.tag:08X}")

    item = dataset.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=bulk_uri)
    if image.width and "7FE00010" not in item:
        # The header was read up to the pixel data: they are named here, by reference as always.
        compressed = UID(image.transfer_syntax_uid).is_compressed
        vr = "OB" if compressed or int(dataset.get("BitsAllocated") or 8) <= 8 else "OW"
        item["7FE00010"] = {"vr": vr, "BulkDataURI": f"{base}7FE00010"}
    return item


def stored_instance_item(request, image: Image) -> Dataset:
    """An item of a STOW-RS ReferencedSOPSequence (StudyInstanceUID is removed before answering)."""
    item = Dataset()
    item.ReferencedSOPClassUID = image.sop_class_uid
    item.ReferencedSOPInstanceUID = image.sop_instance_uid
    item.RetrieveURL = instance_url(request, image)
    item.StudyInstanceUID = image.study.study_instance_uid
    return item


def failed_instance_item(header: Dataset | None, code: int) -> Dataset:
    """An item of a STOW-RS FailedSOPSequence, with the part's UIDs when its header could be read."""
    item = Dataset()
    item.ReferencedSOPClassUID = str(header.get("SOPClassUID", "")) if header is not None else ""
    item.ReferencedSOPInstanceUID = str(header.get("SOPInstanceUID", "")) if header is not None else ""
    item.FailureReason = code
    return item
