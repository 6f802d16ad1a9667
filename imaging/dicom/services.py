"""DICOM instances: checked, then filed under their patient and study.

Every entry point reaches these through ``imaging.intake``, which also applies the limits
common to all files.
"""

import hashlib
import io
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from accounts.models import User
from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.dicom.identity import identity_mismatches
from imaging.dicom.parsing import DicomInstance, dicom_parse, dicom_parse_file
from imaging.dicom.pixels import PixelDecodeError, frame_uint8
from imaging.models import HeldInstance, HoldReason, HoldStatus, Image, ImageSource, Study
from imaging.services import study_create
from imaging.signals import images_stored_send
from imaging.storage import blob_discard, blob_store, content_name, display_filename, sha256_hex
from imaging.validation import IdentityConflict, ImageRejected, pixel_limit_check
from patients.models import Patient
from patients.services import patient_create

logger = logging.getLogger(__name__)

# Up to this size an instance is read into memory and the frame the AI will read is decoded while it
# is taken in, so corrupt pixel data is refused there and then. A larger one (up to
# MEDPORTAL_MAX_DICOM_BYTES) is checked from its header and stored from its file as it came: its
# memory is that of the header, whatever its size, and its pixels are decoded only when read.
DECODE_IN_INTAKE_BYTES = 8 * 1024 * 1024

# Opens the bytes of an instance as received, from its start; closing it must leave the source be.
Opener = Callable[[], AbstractContextManager[BinaryIO]]

# Transfer syntaxes whose pixel data is stored as is: a decoding failure there means a broken file.
_UNDEFINED_LENGTH = 0xFFFFFFFF
_NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
}


@dataclass(frozen=True)
class DicomIngestResult:
    image: Image
    created: bool  # False when this SOP Instance UID was already stored
    patient_created: bool = False
    study_created: bool = False
    # What the after-store handlers queued for it (the AI second opinions); None when it was already there.
    followups: list | None = None

    @property
    def study(self) -> Study:
        return self.image.study


def _pixel_check(instance: DicomInstance) -> str:
    """Decode the frame the AI will read. Returns why it is not analysable, or ''.

    Uncompressed pixel data that does not decode is a broken file and is rejected;
    compressed data we have no working decoder for is kept, marked not analysable, as is an
    instance that is not an image at all.
    """
    if not instance.is_image:
        return f"Not an image ({UID(instance.sop_class_uid).name})."
    if instance.header_only:
        return _pixel_header_check(instance)
    try:
        frame_uint8(instance.dataset)
    except PixelDecodeError as exc:
        if instance.transfer_syntax_uid in _NATIVE_SYNTAXES:
            raise ImageRejected(f"The DICOM pixel data is corrupt or truncated ({exc}); nothing was stored.") from exc
        return str(exc)[:2000]
    return ""


def _pixel_header_check(instance: DicomInstance) -> str:
    """``_pixel_check`` for an instance read by its header only: the pixel data is not decoded.

    Uncompressed pixel data must be as long as its rows, columns, samples, frames and bits say
    (else the file is refused as broken); compressed data is kept, marked not analysable when no
    decoder for its transfer syntax is installed.
    """
    syntax = instance.transfer_syntax
    if instance.transfer_syntax_uid in _NATIVE_SYNTAXES:
        dataset = instance.dataset
        samples = int(dataset.get("SamplesPerPixel") or 1)
        bits = int(dataset.get("BitsAllocated") or 8)
        expected = -(-instance.rows * instance.columns * samples * instance.number_of_frames * bits // 8)
        if instance.pixel_data_length == _UNDEFINED_LENGTH or instance.pixel_data_length < expected:
            raise ImageRejected(
                f"The DICOM pixel data is corrupt or truncated ({instance.pixel_data_length:,} bytes where "
                f"{expected:,} are expected); nothing was stored."
            )
        return ""
    try:
        available = get_decoder(syntax).is_available
    except NotImplementedError:
        available = False
    return "" if available else f"The pixel data ({syntax.name or syntax}) could not be decoded: no decoder."


def _patient_for(
    instance: DicomInstance, *, created_by: User | None, confirmed_patient: Patient | None = None
) -> tuple[Patient, bool]:
    patient = Patient.objects.filter(mrn=instance.patient_id).first()
    if patient is not None:
        return _same_person(patient, instance, confirmed_patient), False
    try:
        with transaction.atomic():
            return (
                patient_create(
                    mrn=instance.patient_id,
                    family_name=instance.patient_family_name or "(no name in DICOM)",
                    given_name=instance.patient_given_name,
                    birth_date=instance.patient_birth_date,
                    sex=instance.patient_sex,
                    created_by=created_by,
                ),
                True,
            )
    except IntegrityError:
        # Another instance of the same new patient arrived at the same moment.
        return _same_person(Patient.objects.get(mrn=instance.patient_id), instance, confirmed_patient), False


def _same_person(patient: Patient, instance: DicomInstance, confirmed_patient: Patient | None) -> Patient:
    """The patient on record, unless the instance disagrees with them (IdentityConflict)."""
    if confirmed_patient is not None and confirmed_patient.pk == patient.pk:
        return patient
    mismatches = identity_mismatches(patient, instance)
    if mismatches:
        raise IdentityConflict(
            f"Patient {patient.mrn} on record differs from this DICOM file ({', '.join(mismatches)}); "
            "nothing was filed.",
            reason=HoldReason.PATIENT_MISMATCH,
            patient=patient,
        )
    return patient


def _generated_accession(study_instance_uid: str) -> str:
    # Many modalities send no accession number; ours must be unique and stable for the study.
    return "DCM-" + hashlib.sha256(study_instance_uid.encode()).hexdigest()[:16].upper()


def _check_same_patient(study: Study, patient: Patient, instance: DicomInstance) -> None:
    if study.patient_id != patient.id:
        raise IdentityConflict(
            f"Study {study.accession_number} belongs to patient {study.patient.mrn}, "
            f"but this DICOM file names patient {instance.patient_id}; nothing was stored.",
            patient=study.patient,
            study=study,
        )


def _adopt_uid(study: Study, instance: DicomInstance) -> Study:
    """Give a study registered by hand (e.g. from the order) the Study Instance UID its images carry."""
    if study.study_instance_uid == instance.study_instance_uid:
        return study
    if study.study_instance_uid:
        raise IdentityConflict(
            f"Study {study.accession_number} has Study Instance UID {study.study_instance_uid}, "
            f"but this DICOM file belongs to study {instance.study_instance_uid}; nothing was stored.",
            patient=study.patient,
            study=study,
        )
    other = Study.objects.filter(study_instance_uid=instance.study_instance_uid).first()
    if other is not None:
        raise IdentityConflict(
            f"This DICOM file belongs to study {other.accession_number}, not to {study.accession_number}.",
            patient=other.patient,
            study=other,
        )
    study.study_instance_uid = instance.study_instance_uid
    study.dicom_accession_number = instance.accession_number or study.accession_number
    study.save(update_fields=["study_instance_uid", "dicom_accession_number", "updated_at"])
    return study


def _study_for(
    instance: DicomInstance, *, patient: Patient, study: Study | None, created_by: User | None
) -> tuple[Study, bool]:
    if study is not None:
        _check_same_patient(study, patient, instance)
        return _adopt_uid(study, instance), False
    existing = Study.objects.select_related("patient").filter(study_instance_uid=instance.study_instance_uid).first()
    if existing is not None:
        _check_same_patient(existing, patient, instance)
        return existing, False
    accession = instance.accession_number
    ordered = Study.objects.select_related("patient").filter(accession_number=accession).first() if accession else None
    if ordered is not None and ordered.study_instance_uid in (None, instance.study_instance_uid):
        # A study registered from the order, waiting for its images.
        _check_same_patient(ordered, patient, instance)
        return _adopt_uid(ordered, instance), False
    if not accession or ordered is not None:
        # No accession number, or one already used by another study (a second study of the same order,
        # or another issuer's number): the study is its own, keyed by its UID; DICOM queries answer
        # and match the number the file carries (``dicom_accession_number``), never the generated key.
        accession = _generated_accession(instance.study_instance_uid)
    try:
        with transaction.atomic():
            created = study_create(
                patient=patient,
                accession_number=accession,
                modality=instance.modality,
                body_part=instance.body_part,
                description=instance.study_description,
                study_date=instance.study_date,
                study_time=instance.study_time,
                dicom_study_id=instance.study_id,
                referring_physician=instance.referring_physician,
                study_instance_uid=instance.study_instance_uid,
                dicom_accession_number=instance.accession_number,
                created_by=created_by,
            )
            return created, True
    except IntegrityError:
        existing = Study.objects.select_related("patient").get(study_instance_uid=instance.study_instance_uid)
        _check_same_patient(existing, patient, instance)
        return existing, False


def _existing(instance: DicomInstance, study: Study | None) -> DicomIngestResult | None:
    image = Image.objects.select_related("study").filter(sop_instance_uid=instance.sop_instance_uid).first()
    if image is None:
        return None
    if study is not None and image.study_id != study.id:
        raise ImageRejected(f"This DICOM instance is already stored in study {image.study.accession_number}.")
    return DicomIngestResult(image=image, created=False)


@dataclass(frozen=True)
class CheckedDicom:
    """A DICOM instance that parsed and passed the pixel check, and may be filed."""

    filename: str
    instance: DicomInstance
    sha256: str
    size: int
    not_analysable_reason: str  # "" when the AI can read its pixels
    open: Opener  # its bytes as received, stored from there as they are


def dicom_check(*, data: bytes, filename: str = "") -> CheckedDicom:
    """Parse a DICOM instance and decode the frame the AI will read. Raises ImageRejected."""
    instance = dicom_parse(data)
    if instance.is_image:
        pixel_limit_check(width=instance.columns, height=instance.rows)
    return CheckedDicom(
        filename=display_filename(filename) or f"{instance.sop_instance_uid}.dcm"[:255],
        instance=instance,
        sha256=sha256_hex(data),
        size=len(data),
        not_analysable_reason=_pixel_check(instance),
        open=lambda: io.BytesIO(data),
    )


def dicom_check_file(*, open: Opener, size: int, filename: str = "") -> CheckedDicom:  # noqa: A002
    """``dicom_check`` for an instance in a file, read into memory only if it is small.

    Up to ``DECODE_IN_INTAKE_BYTES`` it is read and checked as bytes; a larger one is checked from
    its header (``dicom_parse_file``) and hashed in chunks, never held in memory.
    """
    if size <= DECODE_IN_INTAKE_BYTES:
        with open() as handle:
            handle.seek(0)
            return dicom_check(data=handle.read(), filename=filename)
    with open() as handle:
        handle.seek(0)
        sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        size = handle.tell()
        instance = dicom_parse_file(handle, size=size)
    if instance.is_image:
        pixel_limit_check(width=instance.columns, height=instance.rows)
    return CheckedDicom(
        filename=display_filename(filename) or f"{instance.sop_instance_uid}.dcm"[:255],
        instance=instance,
        sha256=sha256,
        size=size,
        not_analysable_reason=_pixel_check(instance),
        open=open,
    )


def dicom_ingest(
    *,
    data: bytes,
    source: ImageSource | str,
    uploaded_by: User | None = None,
    study: Study | None = None,
    filename: str = "",
) -> DicomIngestResult:
    """Check and file one DICOM instance (see ``dicom_store``)."""
    return dicom_store(
        checked=dicom_check(data=data, filename=filename), source=source, uploaded_by=uploaded_by, study=study
    )


def dicom_store(
    *,
    checked: CheckedDicom,
    source: ImageSource | str,
    uploaded_by: User | None = None,
    study: Study | None = None,
    confirmed_patient: Patient | None = None,
) -> DicomIngestResult:
    """Store and file one checked DICOM instance, then announce it so AI work can be queued.

    The patient is matched (or created) by PatientID, and must agree on the name and birth date
    the file carries (``imaging.dicom.identity``) unless it is ``confirmed_patient`` (an
    administrator reconciled it); the study by StudyInstanceUID, else by accession number (a
    study registered from the order), else created from the tags. With ``study`` the instance
    must belong to that study's patient. The original bytes are stored untouched; the same SOP
    Instance UID received again gives back the stored image. Raises ImageRejected with the reason
    for the user (IdentityConflict when it does not match the records); nothing is stored then.
    """
    instance, not_analysable_reason = checked.instance, checked.not_analysable_reason
    existing = _existing(instance, study)
    if existing is not None:
        return existing
    with checked.open() as handle:
        blob = blob_store(file=handle, name=content_name("images", checked.sha256, ".dcm"))
    try:
        with transaction.atomic():
            patient, patient_created = _patient_for(
                instance, created_by=uploaded_by, confirmed_patient=confirmed_patient
            )
            target, study_created = _study_for(instance, patient=patient, study=study, created_by=uploaded_by)
            image = Image(
                study=target,
                file=blob.name,
                sha256=checked.sha256,
                size_bytes=checked.size,
                content_type=DICOM_CONTENT_TYPE,
                width=instance.columns,
                height=instance.rows,
                original_filename=checked.filename,
                uploaded_by=uploaded_by,
                source=source,
                sop_instance_uid=instance.sop_instance_uid,
                sop_class_uid=instance.sop_class_uid,
                series_instance_uid=instance.series_instance_uid,
                transfer_syntax_uid=instance.transfer_syntax_uid,
                number_of_frames=instance.number_of_frames,
                modality=instance.modality_code[:16],
                analysable=not not_analysable_reason,
                not_analysable_reason=not_analysable_reason,
            )
            image.full_clean(validate_constraints=False)
            image.save()
            followups = images_stored_send(study=target, images=[image]).get(image.id, [])
    except IntegrityError:
        # The same instance arrived twice at once (e.g. two C-STORE associations); the first one won.
        again = Image.objects.select_related("study").filter(sop_instance_uid=instance.sop_instance_uid).first()
        if again is None:
            blob_discard(blob)
            raise
        return DicomIngestResult(image=again, created=False)
    except ValidationError as exc:
        blob_discard(blob)
        raise ImageRejected(f"The DICOM file's tags cannot be filed: {'; '.join(exc.messages)}") from exc
    except BaseException:
        blob_discard(blob)
        raise
    logger.info(
        "Stored DICOM %s (%s) from %s in study %s%s",
        instance.sop_instance_uid,
        instance.modality_code,
        source,
        target.accession_number,
        "" if image.analysable else " (not analysable)",
    )
    return DicomIngestResult(
        image=image,
        created=True,
        patient_created=patient_created,
        study_created=study_created,
        followups=followups,
    )


def dicom_hold(
    *,
    checked: CheckedDicom,
    conflict: IdentityConflict,
    source: ImageSource | str,
    uploaded_by: User | None = None,
    peer: str = "",
) -> HeldInstance:
    """Keep an instance that clashes with the records aside, unfiled, for an administrator.

    The same instance sent again while it is held gives back the one hold.
    """
    existing = HeldInstance.objects.filter(
        sop_instance_uid=checked.instance.sop_instance_uid, sha256=checked.sha256, status=HoldStatus.HELD
    ).first()
    if existing is not None:
        return existing
    with checked.open() as handle:
        blob = blob_store(file=handle, name=content_name("held", checked.sha256, ".dcm"))
    try:
        with transaction.atomic():
            held = HeldInstance(
                file=blob.name,
                sha256=checked.sha256,
                size_bytes=checked.size,
                sop_instance_uid=checked.instance.sop_instance_uid,
                study_instance_uid=checked.instance.study_instance_uid,
                patient=conflict.patient,
                study=conflict.study,
                reason=conflict.reason,
                detail=str(conflict),
                source=source,
                peer=peer[:120],
                uploaded_by=uploaded_by,
            )
            held.full_clean()
            held.save()
    except BaseException:
        if blob.created and not HeldInstance.objects.filter(file=blob.name).exists():
            default_storage.delete(blob.name)
        raise
    logger.warning("Held DICOM %s from %s: %s", checked.instance.sop_instance_uid, source, conflict.reason)
    return held
