"""The DICOM Query/Retrieve SCP: C-FIND, C-MOVE and C-GET on the receiver's association.

Patient Root and Study Root information models. Matching is the one DICOMweb's QIDO uses
(``imaging.dicom.selectors``); retrieved instances are read through Django's storage and sent in the
transfer syntax they were stored in. What every query returned and every retrieve sent is written
to the audit trail in one INSERT, with the calling AE title and address standing where a user would.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Model, QuerySet
from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID, ImplicitVRLittleEndian
from pynetdicom import ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, build_context, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from audit.models import AuditAction, AuditInterface
from audit.services import audit_record, audit_record_many
from imaging.dicom.attributes import CHARACTER_SET, patient_attributes, study_attributes
from imaging.dicom.dimse import dimse_status
from imaging.dicom.parsing import read_dataset
from imaging.dicom.peers import dicom_move_destination
from imaging.dicom.selectors import (
    dicom_instance_header,
    dicom_instance_search,
    dicom_patient_search,
    dicom_series_counts,
    dicom_study_search,
    modalities_in_study,
)
from imaging.models import Image, Study
from imaging.storage import blob_read

logger = logging.getLogger(__name__)

PENDING = 0xFF00
CANCEL = 0xFE00
OUT_OF_RESOURCES = 0xA700
IDENTIFIER_DOES_NOT_MATCH = 0xA900
UNABLE_TO_PROCESS = 0xC000

PATIENT_ROOT = (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
)
STUDY_ROOT = (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
)
LEVELS = dict.fromkeys(PATIENT_ROOT, ("PATIENT", "STUDY", "SERIES", "IMAGE")) | dict.fromkeys(
    STUDY_ROOT, ("STUDY", "SERIES", "IMAGE")
)
# A C-MOVE sub-association proposes one presentation context per SOP class and stored transfer syntax.
MAX_CONTEXTS = 128


def qr_contexts_add(ae) -> None:
    """Offer C-FIND, C-MOVE and C-GET, and take the storage SCP role a C-GET peer asks for."""
    for model in (*PATIENT_ROOT, *STUDY_ROOT):
        ae.add_supported_context(model)
    # A C-GET peer receives the instances on the same association: it proposes the storage
    # contexts with SCP/SCU role selection, and accepting its roles is what lets us send on them.
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES, scu_role=True, scp_role=True)


def qr_handlers(*, ae_title: str) -> list:
    return [
        (evt.EVT_C_FIND, handle_find, [ae_title]),
        (evt.EVT_C_MOVE, handle_move),
        (evt.EVT_C_GET, handle_get),
    ]


@dataclass(frozen=True)
class Peer:
    ae_title: str
    address: str

    @classmethod
    def of(cls, event) -> "Peer":
        return cls(ae_title=event.assoc.requestor.ae_title, address=event.assoc.requestor.address)


@dataclass(frozen=True)
class Match:
    """One C-FIND answer: the attributes known for it, and the record whose reading is audited."""

    attributes: Dataset
    record: Model
    patient_id: object


def _text(identifier: Dataset, keyword: str) -> str:
    value = identifier.get(keyword)
    if isinstance(value, MultiValue):
        return "\\".join(str(v) for v in value).strip()
    return str(value or "").strip()


def _list(identifier: Dataset, keyword: str) -> list[str]:
    """A UID list (or a multi-valued CS) as sent: backslash separated values."""
    value = identifier.get(keyword)
    if not value:
        return []
    values = value if isinstance(value, MultiValue) else str(value).split("\\")
    return [str(v).strip() for v in values if str(v).strip() and str(v).strip() != "*"]


def _studies(identifier: Dataset) -> QuerySet[Study]:
    return dicom_study_search(
        study_uids=_list(identifier, "StudyInstanceUID"),
        patient_id=_text(identifier, "PatientID"),
        patient_name=_text(identifier, "PatientName"),
        accession_number=_text(identifier, "AccessionNumber"),
        study_date=_text(identifier, "StudyDate"),
        study_time=_text(identifier, "StudyTime"),
        study_id=_text(identifier, "StudyID"),
        modalities=[modality.upper() for modality in _list(identifier, "ModalitiesInStudy")],
        description=_text(identifier, "StudyDescription"),
    )


# C-FIND


def _find_patients(identifier: Dataset, limit: int) -> list[Match]:
    patients = dicom_patient_search(
        patient_id=_text(identifier, "PatientID"),
        patient_name=_text(identifier, "PatientName"),
        birth_date=_text(identifier, "PatientBirthDate"),
    )
    matches = []
    for patient in patients[: limit + 1]:
        attributes = patient_attributes(patient)
        attributes.NumberOfPatientRelatedStudies = patient.study_count
        attributes.NumberOfPatientRelatedSeries = patient.series_count
        attributes.NumberOfPatientRelatedInstances = patient.instance_count
        matches.append(Match(attributes, patient, patient.pk))
    return matches


def _find_studies(identifier: Dataset, limit: int) -> list[Match]:
    matches = []
    studies = list(_studies(identifier)[: limit + 1])
    for study in studies:
        attributes = study_attributes(study, modalities=modalities_in_study(study.instance_modalities))
        attributes.NumberOfStudyRelatedSeries = study.series_count
        attributes.NumberOfStudyRelatedInstances = study.instance_count
        matches.append(Match(attributes, study, study.patient_id))
    return matches


def _find_series(identifier: Dataset, limit: int) -> list[Match]:
    """Each series is described by its first instance's header, as QIDO-RS does."""
    wanted_series = set(_list(identifier, "SeriesInstanceUID"))
    wanted_modalities = {modality.upper() for modality in _list(identifier, "Modality")}
    matches = []
    for study in _studies(identifier)[: limit + 1]:
        for row in dicom_series_counts(study=study):
            series_uid = row["series_instance_uid"]
            if wanted_series and series_uid not in wanted_series:
                continue
            first = dicom_instance_search(studies=Study.objects.filter(pk=study.pk), series_uids=[series_uid]).first()
            header = dicom_instance_header(image=first)
            if wanted_modalities and str(header.get("Modality", "")).upper() not in wanted_modalities:
                continue
            attributes = study_attributes(study)
            attributes.update(_series_part(header))
            attributes.SeriesInstanceUID = series_uid
            attributes.NumberOfSeriesRelatedInstances = row["n"]
            matches.append(Match(attributes, study, study.patient_id))
            if len(matches) > limit:
                return matches
    return matches


def _series_part(header: Dataset) -> Dataset:
    # What the first instance says of its series; its instance-level attributes are not the series'.
    part = Dataset()
    for keyword in ("Modality", "SeriesNumber", "SeriesDescription", "SeriesDate", "SeriesTime", "BodyPartExamined"):
        if keyword in header:
            part[keyword] = header[keyword]
    return part


def _find_instances(identifier: Dataset, limit: int) -> list[Match]:
    images = dicom_instance_search(
        studies=_studies(identifier),
        series_uids=_list(identifier, "SeriesInstanceUID"),
        instance_uids=_list(identifier, "SOPInstanceUID"),
        sop_classes=_list(identifier, "SOPClassUID"),
    )
    matches = []
    for image in images[: limit + 1]:
        attributes = Dataset()
        # Any attribute the instance has may be asked for; the records' own values then override it.
        attributes.update(dicom_instance_header(image=image))
        attributes.update(study_attributes(image.study))
        attributes.SeriesInstanceUID = image.series_instance_uid
        attributes.SOPClassUID = image.sop_class_uid
        attributes.SOPInstanceUID = image.sop_instance_uid
        matches.append(Match(attributes, image, image.study.patient_id))
    return matches


FINDERS = {"PATIENT": _find_patients, "STUDY": _find_studies, "SERIES": _find_series, "IMAGE": _find_instances}


def _answer(identifier: Dataset, attributes: Dataset, *, level: str, ae_title: str) -> Dataset:
    """The keys the peer asked for, with our values (empty where we have none)."""
    answer = Dataset()
    for element in identifier:
        if element.tag.element == 0 or element.keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
            continue
        if element.tag in attributes:
            answer[element.tag] = attributes[element.tag]
        else:
            answer.add_new(element.tag, element.VR, None)
    answer.SpecificCharacterSet = CHARACTER_SET
    answer.QueryRetrieveLevel = level
    answer.RetrieveAETitle = ae_title
    return answer


def handle_find(event, ae_title: str) -> Iterator[tuple]:
    """C-FIND: one pending answer per match, then success (or out of resources past the limit)."""
    identifier = event.identifier
    level = _text(identifier, "QueryRetrieveLevel").upper()
    peer = Peer.of(event)
    if level not in LEVELS.get(event.request.AffectedSOPClassUID, ()):
        yield dimse_status(IDENTIFIER_DOES_NOT_MATCH, f"Query level {level or 'missing'} not in this model"), None
        return
    limit = settings.MEDPORTAL_DICOM_FIND_LIMIT
    close_old_connections()
    try:
        matches = FINDERS[level](identifier, limit)
        shown = matches[:limit]
        _audit_matches(peer, AuditAction.READ, shown, detail=f"C-FIND {level}")
    except Exception:
        logger.exception("C-FIND from %s failed", peer.ae_title)
        yield dimse_status(UNABLE_TO_PROCESS, "Query failed; try again later."), None
        return
    finally:
        close_old_connections()
    logger.info("C-FIND %s from %s: %s match(es)", level, peer.ae_title, len(shown))
    for match in shown:
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield PENDING, _answer(identifier, match.attributes, level=level, ae_title=ae_title)
    if len(matches) > limit:
        yield dimse_status(OUT_OF_RESOURCES, f"More than {limit} matches; narrow the query."), None


def _audit_matches(peer: Peer, action: AuditAction, matches: list[Match], *, detail: str) -> None:
    # One row per distinct record (the series of one study are one read of that study).
    records = {(match.record._meta.label_lower, match.record.pk): match for match in matches}
    if not records:
        # A query that found nothing is still a look into the archive.
        audit_record(
            actor=None,
            action=action,
            interface=AuditInterface.DIMSE,
            detail=f"{detail}: no match",
            username=peer.ae_title,
            address=peer.address,
        )
        return
    audit_record_many(
        actor=None,
        action=action,
        items=[(match.record, match.patient_id) for match in records.values()],
        interface=AuditInterface.DIMSE,
        detail=detail,
        username=peer.ae_title,
        address=peer.address,
    )


# C-MOVE and C-GET


def _retrieve_instances(identifier: Dataset, *, model: str) -> list[Image]:
    """The instances a C-MOVE or C-GET names by its unique keys (PS3.4 C.4.2.2.1): nothing by wildcard."""
    level = _text(identifier, "QueryRetrieveLevel").upper()
    if level not in LEVELS.get(model, ()):
        return []
    patient_id = _text(identifier, "PatientID")
    keys = {
        "study_uids": _list(identifier, "StudyInstanceUID"),
        "series_uids": _list(identifier, "SeriesInstanceUID"),
        "instance_uids": _list(identifier, "SOPInstanceUID"),
    }
    unique = {"PATIENT": patient_id, "STUDY": keys["study_uids"], "SERIES": keys["series_uids"]}.get(
        level, keys["instance_uids"]
    )
    if not unique or any(character in patient_id for character in "*?\\"):
        return []
    studies = dicom_study_search(study_uids=keys["study_uids"], patient_id=patient_id)
    return list(
        dicom_instance_search(studies=studies, series_uids=keys["series_uids"], instance_uids=keys["instance_uids"])
    )


def _instance_dataset(image: Image) -> Dataset:
    """The stored instance as it was received, or (unreadable) a stand-in that fails its sub-operation."""
    try:
        return read_dataset(blob_read(image.file.name))
    except Exception:
        logger.exception("Stored instance %s could not be read for a retrieve", image.sop_instance_uid)
        # Without file meta pynetdicom cannot send it: the sub-operation fails and names the instance.
        stand_in = Dataset()
        stand_in.SOPClassUID = image.sop_class_uid
        stand_in.SOPInstanceUID = image.sop_instance_uid
        return stand_in


def _sub_operations(event, images: list[Image]) -> Iterator[tuple]:
    for image in images:
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield PENDING, _instance_dataset(image)


def _retrieve(event, *, detail: str) -> list[Image]:
    peer = Peer.of(event)
    close_old_connections()
    try:
        images = _retrieve_instances(event.identifier, model=event.request.AffectedSOPClassUID)
        matches = [Match(Dataset(), image, image.study.patient_id) for image in images]
        _audit_matches(peer, AuditAction.DOWNLOAD, matches, detail=detail)
    finally:
        close_old_connections()
    logger.info("%s from %s: %s instance(s)", detail, peer.ae_title, len(images))
    return images


def handle_move(event) -> Iterator:
    """C-MOVE: C-STORE the matches to a peer with a storage port, on a new association, as stored."""
    destination_ae = event.move_destination.strip() if isinstance(event.move_destination, str) else ""
    peer = Peer.of(event)
    close_old_connections()
    try:
        destination = dicom_move_destination(ae_title=destination_ae)
    finally:
        close_old_connections()
    if destination is None:
        logger.warning("C-MOVE from %s to unknown destination %r refused", peer.ae_title, destination_ae)
        close_old_connections()
        try:
            audit_record(
                actor=None,
                action=AuditAction.DOWNLOAD,
                interface=AuditInterface.DIMSE,
                detail=f"C-MOVE refused: unknown destination {destination_ae}"[:255],
                username=peer.ae_title,
                address=peer.address,
            )
        finally:
            close_old_connections()
        yield None, None  # pynetdicom answers 0xA801, move destination unknown
        return
    images = _retrieve(event, detail=f"C-MOVE to {destination_ae}")
    # One context per SOP class and transfer syntax, so that each instance goes as it is stored; an
    # uncompressed one may also go as Implicit VR Little Endian, which every Storage SCP accepts.
    stored = {(image.sop_class_uid, UID(image.transfer_syntax_uid or ImplicitVRLittleEndian)) for image in images}
    fallback = {(sop_class, ImplicitVRLittleEndian) for sop_class, syntax in stored if not syntax.is_compressed}
    pairs = sorted(stored) + sorted(fallback - stored)
    contexts = [build_context(sop_class, syntax) for sop_class, syntax in pairs[:MAX_CONTEXTS]]
    yield destination[0], destination[1], {"contexts": contexts}
    yield len(images)
    yield from _sub_operations(event, images)


def handle_get(event) -> Iterator:
    """C-GET: C-STORE the matches back on the same association, in their stored encoding."""
    images = _retrieve(event, detail="C-GET")
    yield len(images)
    yield from _sub_operations(event, images)
