"""Held DICOM instances: an administrator files one under the patient on record, or rejects it.

Both are one transaction each; the held file is removed from storage only once it has committed.
"""

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from imaging.intake import Batch, IncomingFile, IntakeRejected, files_intake
from imaging.models import HeldInstance, HoldReason, HoldStatus, Image


def _locked(held: HeldInstance) -> HeldInstance:
    held = HeldInstance.objects.select_for_update().select_related("patient").get(pk=held.pk)
    if held.status != HoldStatus.HELD:
        raise ValidationError(f"This instance is no longer held: it was {held.get_status_display().lower()}.")
    return held


def _resolve(held: HeldInstance, *, status: HoldStatus, user: User, image: Image | None = None) -> None:
    name = held.file.name
    held.status, held.image, held.file = status, image, ""
    held.resolved_by, held.resolved_at = user, timezone.now()
    held.full_clean()
    held.save()
    transaction.on_commit(lambda: _discard(name))


def _discard(name: str) -> None:
    # The same bytes may be held twice (sent again after a hold was resolved): keep them while any refers to them.
    if name and not HeldInstance.objects.filter(file=name).exists():
        default_storage.delete(name)


@transaction.atomic
def held_instance_file(*, held: HeldInstance, user: User) -> Image:
    """File a held instance under the patient it was matched against: an administrator confirmed it is them.

    Only for a name or birth date that differ; an instance whose study is another patient's is
    never filed there (correct it at the source and send it again). Raises ValidationError.
    """
    held = _locked(held)
    if held.reason != HoldReason.PATIENT_MISMATCH:
        raise ValidationError(
            "Its study belongs to another patient, so it cannot be filed; correct it at the source and send it again."
        )
    try:
        [intake] = files_intake(
            files=[IncomingFile.from_storage(held.file.name, f"{held.sop_instance_uid}.dcm")],
            source=held.source,
            uploaded_by=held.uploaded_by,
            batch=Batch.ALL_OR_NOTHING,
            confirmed_patient=held.patient,
        )
    except IntakeRejected as exc:
        raise ValidationError(str(exc)) from exc
    _resolve(held, status=HoldStatus.FILED, user=user, image=intake.image)
    return intake.image


@transaction.atomic
def held_instance_reject(*, held: HeldInstance, user: User) -> None:
    """Reject a held instance: nothing is filed and its file is deleted; the record of the hold stays."""
    _resolve(_locked(held), status=HoldStatus.REJECTED, user=user)
