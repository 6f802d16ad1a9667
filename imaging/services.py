import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from imaging.models import BodyPart, Image, Modality, Priority, Procedure, Study
from imaging.signals import images_stored_send
from imaging.storage import blob_discard, blob_store, content_name, display_filename, sha256_hex
from imaging.validation import DecodedImage, decode_image
from patients.models import Patient

logger = logging.getLogger(__name__)


@transaction.atomic
def study_create(
    *,
    patient: Patient,
    accession_number: str,
    modality: Modality | str,
    body_part: BodyPart | str,
    procedure: Procedure | str = Procedure.GENERAL,
    description: str = "",
    study_date: datetime.date | None = None,
    study_time: datetime.time | None = None,
    dicom_study_id: str = "",
    referring_physician: str = "",
    priority: Priority | int = Priority.ROUTINE,
    study_instance_uid: str | None = None,
    dicom_accession_number: str = "",
    created_by: User | None = None,
) -> Study:
    study = Study(
        patient=patient,
        accession_number=accession_number.strip(),
        modality=modality,
        body_part=body_part,
        procedure=procedure or Procedure.GENERAL,
        description=description.strip(),
        study_date=study_date,
        study_time=study_time,
        dicom_study_id=dicom_study_id.strip(),
        referring_physician=referring_physician.strip(),
        priority=priority,
        study_instance_uid=study_instance_uid or None,
        dicom_accession_number=dicom_accession_number.strip(),
        created_by=created_by,
    )
    study.full_clean()
    study.save()
    return study


_STUDY_EDITABLE = {"accession_number", "description", "study_date", "referring_physician", "priority"}
# These pick the AI models; once images are in, changing them would leave opinions from the wrong models.
_STUDY_ROUTING = {"modality", "body_part", "procedure"}


@transaction.atomic
def study_update(*, study: Study, **changes: object) -> Study:
    unknown = set(changes) - _STUDY_EDITABLE - _STUDY_ROUTING
    if unknown:
        raise TypeError(f"Not editable: {', '.join(sorted(unknown))}")
    routing = {field for field in set(changes) & _STUDY_ROUTING if changes[field] != getattr(study, field)}
    if routing and study.images.exists():
        raise ValidationError(
            dict.fromkeys(routing, "Cannot change once images are uploaded: it decides which AI models read them.")
        )
    corrected_accession = "accession_number" in changes and changes["accession_number"] != study.accession_number
    for field, value in changes.items():
        setattr(study, field, value.strip() if isinstance(value, str) else value)
    if corrected_accession and study.study_instance_uid:
        # A correction made here is what DICOM queries answer from now on.
        study.dicom_accession_number = study.accession_number
    study.full_clean()
    study.save()
    return study


@dataclass(frozen=True)
class UploadResult:
    image: Image
    created: bool  # False when the same bytes were already in this study
    # What the after-store handlers queued for it (the AI second opinions); None when it was already there.
    followups: list | None = None


@dataclass(frozen=True)
class CheckedImage:
    """A PNG or JPEG that passed every check and may be stored."""

    filename: str
    data: bytes
    decoded: DecodedImage
    sha256: str


def image_check(*, data: bytes, filename: str = "") -> CheckedImage:
    """Decode a PNG or JPEG in full and check it against the limits. Raises ImageRejected."""
    return CheckedImage(
        filename=display_filename(filename), data=data, decoded=decode_image(data), sha256=sha256_hex(data)
    )


def images_store(
    *, study: Study, images: Sequence[CheckedImage], uploaded_by: User | None = None
) -> list[UploadResult]:
    """Store checked images in one study and announce them (``images_stored``), all in one go.

    One result per input, in order. Bytes already in the study (or repeated in ``images``)
    give back the existing image. A few statements serve the whole batch, so a modality
    sending a series costs little more than sending one image.
    """
    try:
        return _images_store_once(study=study, images=images, uploaded_by=uploaded_by)
    except IntegrityError:
        # A concurrent upload of some of the same bytes to this study won the race; theirs stand.
        return _images_store_once(study=study, images=images, uploaded_by=uploaded_by)


def _images_store_once(*, study: Study, images: Sequence[CheckedImage], uploaded_by: User | None) -> list[UploadResult]:
    known = {image.sha256: image for image in Image.objects.filter(study=study, sha256__in={i.sha256 for i in images})}
    new: list[Image] = []
    blobs = []
    for item in images:
        if item.sha256 in known:
            continue
        blob = blob_store(data=item.data, name=content_name("images", item.sha256, item.decoded.extension))
        blobs.append(blob)
        known[item.sha256] = Image(
            study=study,
            file=blob.name,
            sha256=item.sha256,
            size_bytes=len(item.data),
            content_type=item.decoded.content_type,
            width=item.decoded.width,
            height=item.decoded.height,
            original_filename=item.filename,
            uploaded_by=uploaded_by,
        )
        new.append(known[item.sha256])
    by_image: dict = {}
    if new:
        try:
            with transaction.atomic():
                for image in new:
                    # The study and uploader are in hand and the database enforces uniqueness, so
                    # only the field checks run here, not a query per relation.
                    image.full_clean(
                        exclude=["study", "uploaded_by"], validate_unique=False, validate_constraints=False
                    )
                Image.objects.bulk_create(new)
                by_image = images_stored_send(study=study, images=new)
        except BaseException:
            for blob in blobs:
                blob_discard(blob)
            raise
    results = []
    for item in images:
        image = known[item.sha256]
        # Popped, so only the first of bytes repeated in one request counts as created.
        followups = by_image.pop(image.id, None)
        results.append(UploadResult(image=image, created=followups is not None, followups=followups))
    return results
