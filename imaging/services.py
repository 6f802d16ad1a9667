import datetime
import logging
from dataclasses import dataclass
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from accounts.models import User
from imaging.dicom.parsing import looks_like_dicom
from imaging.models import BodyPart, Image, ImageSource, Modality, Priority, Procedure, Study
from imaging.storage import blob_store, content_name, sha256_hex
from imaging.validation import ImageRejected, decode_image
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
    referring_physician: str = "",
    priority: Priority | int = Priority.ROUTINE,
    study_instance_uid: str | None = None,
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
        referring_physician=referring_physician.strip(),
        priority=priority,
        study_instance_uid=study_instance_uid or None,
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
    for field, value in changes.items():
        setattr(study, field, value.strip() if isinstance(value, str) else value)
    study.full_clean()
    study.save()
    return study


@dataclass(frozen=True)
class UploadResult:
    image: Image
    created: bool  # False when the same bytes were already in this study


def _display_filename(filename: str) -> str:
    # Kept for display only; strip any directory part a client sent.
    return PurePath(filename.replace("\\", "/")).name[:255]


def image_upload(*, study: Study, data: bytes, filename: str = "", uploaded_by: User | None = None) -> UploadResult:
    """Validate, store and register an image, then queue an AI second opinion per applicable model.

    DICOM files go through DICOM ingestion, which checks they belong to this study's patient.

    Raises ImageRejected with a message for the user; nothing is stored then.
    The same bytes uploaded twice to one study give back the existing image.
    """
    # Imported here: inference depends on imaging, not the other way round.
    from inference.services import predictions_create_for_image

    if len(data) > settings.MEDPORTAL_MAX_UPLOAD_BYTES:
        raise ImageRejected(
            f"The file is {len(data):,} bytes; the limit is {settings.MEDPORTAL_MAX_UPLOAD_BYTES:,} bytes."
        )
    if looks_like_dicom(data):
        from imaging.dicom.services import dicom_ingest

        result = dicom_ingest(
            data=data, source=ImageSource.UPLOAD, uploaded_by=uploaded_by, study=study, filename=filename
        )
        return UploadResult(image=result.image, created=result.created)
    decoded = decode_image(data)
    sha256 = sha256_hex(data)
    existing = Image.objects.filter(study=study, sha256=sha256).first()
    if existing is not None:
        return UploadResult(image=existing, created=False)

    blob = blob_store(data=data, name=content_name("images", sha256, decoded.extension))
    try:
        with transaction.atomic():
            image = Image(
                study=study,
                file=blob.name,
                sha256=sha256,
                size_bytes=len(data),
                content_type=decoded.content_type,
                width=decoded.width,
                height=decoded.height,
                original_filename=_display_filename(filename),
                uploaded_by=uploaded_by,
            )
            image.full_clean(validate_constraints=False)
            image.save()
            predictions_create_for_image(image=image)
    except IntegrityError:
        # A concurrent upload of the same bytes to this study won the race.
        existing = Image.objects.filter(study=study, sha256=sha256).first()
        if existing is None:
            _discard(blob)
            raise
        return UploadResult(image=existing, created=False)
    except (ValidationError, Exception):
        _discard(blob)
        raise
    return UploadResult(image=image, created=True)


def _discard(blob) -> None:
    """Remove a file this upload stored, unless another image already refers to it."""
    if blob.created and not Image.objects.filter(file=blob.name).exists():
        default_storage.delete(blob.name)
