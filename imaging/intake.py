"""The one way in for a file.

The upload page, the REST upload, the Import DICOM page, DICOMweb STOW-RS and the C-STORE
receiver all hand their files to ``files_intake``. It tells the type from the content (PNG,
JPEG or DICOM, never from the name), applies the same limits and rules to every file, stores
it and announces it (``imaging.signals.images_stored``), so the AI work is queued in the same
transaction. Each entry point chooses only how a batch commits (``Batch``).
"""

import contextlib
import enum
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, transaction

from accounts.models import User
from imaging.dicom.parsing import looks_like_dicom
from imaging.dicom.services import CheckedDicom, Opener, dicom_check, dicom_check_file, dicom_hold, dicom_store
from imaging.models import HeldInstance, Image, ImageSource, Study
from imaging.services import CheckedImage, image_check, images_store
from imaging.storage import StoredBlob, blob_discard, display_filename
from imaging.validation import IdentityConflict, ImageRejected
from patients.models import Patient

logger = logging.getLogger(__name__)

UNREADABLE = "The file could not be read as an image; it may be corrupt or truncated."
HEAD_BYTES = 132  # a DICOM preamble and its "DICM"


class Batch(enum.StrEnum):
    """How the files of one request commit."""

    # Each file is stored or rejected on its own (the pages, STOW-RS per instance, C-STORE).
    EACH_FILE = "each-file"
    # One rejected file rejects the whole request and nothing is stored (the REST upload).
    ALL_OR_NOTHING = "all-or-nothing"


@dataclass(frozen=True)
class IncomingFile:
    filename: str
    size: int
    read: Callable[[], bytes]  # called only once the size is known to be within the limit
    # The first bytes, enough to tell DICOM from a picture (``looks_like_dicom``) without reading it all.
    head: Callable[[], bytes] | None = None
    # The file to read a DICOM instance from in chunks: parsed by its header and stored by copying,
    # so that an instance up to MEDPORTAL_MAX_DICOM_BYTES never has to be held in memory.
    open: Opener | None = None

    @classmethod
    def from_bytes(cls, data: bytes, filename: str = "") -> "IncomingFile":
        return cls(
            filename=filename,
            size=len(data),
            read=lambda: data,
            head=lambda: data[:HEAD_BYTES],
            open=lambda: io.BytesIO(data),
        )

    @classmethod
    def from_fileobj(cls, fileobj, filename: str = "", *, size: int) -> "IncomingFile":
        """A seekable file the caller keeps open until the intake returns (e.g. a spooled STOW-RS part)."""

        def opened():
            fileobj.seek(0)
            return contextlib.nullcontext(fileobj)

        def read() -> bytes:
            fileobj.seek(0)
            return fileobj.read()

        def head() -> bytes:
            fileobj.seek(0)
            return fileobj.read(HEAD_BYTES)

        return cls(filename=filename, size=size, read=read, head=head, open=opened)

    @classmethod
    def from_path(cls, path: Path, filename: str = "", *, size: int | None = None) -> "IncomingFile":
        """A file already on disk (e.g. a C-STORE dataset received into a temporary file).

        Nothing is read until the size is known to be within the limit.
        """

        def head() -> bytes:
            with path.open("rb") as handle:
                return handle.read(HEAD_BYTES)

        return cls(
            filename=filename,
            size=path.stat().st_size if size is None else size,
            read=path.read_bytes,
            head=head,
            open=lambda: path.open("rb"),
        )

    @classmethod
    def from_storage(cls, name: str, filename: str = "") -> "IncomingFile":
        """A file already in storage (a held instance being filed), read from there in chunks."""

        def read() -> bytes:
            with default_storage.open(name, "rb") as handle:
                return handle.read()

        def head() -> bytes:
            with default_storage.open(name, "rb") as handle:
                return handle.read(HEAD_BYTES)

        return cls(
            filename=filename,
            size=default_storage.size(name),
            read=read,
            head=head,
            open=lambda: default_storage.open(name, "rb"),
        )

    @classmethod
    def from_upload(cls, upload: UploadedFile) -> "IncomingFile":
        def head() -> bytes:
            upload.seek(0)
            data = upload.read(HEAD_BYTES)
            upload.seek(0)
            return data

        def opened():
            # Django closes (and removes) the upload's temporary file itself, after the request.
            upload.seek(0)
            return contextlib.nullcontext(upload)

        return cls(filename=upload.name or "", size=upload.size or 0, read=upload.read, head=head, open=opened)


@dataclass(frozen=True)
class Intake:
    """The verdict on one file: stored (``image``), or refused with the reason for the sender."""

    filename: str  # as the sender named it, without any directory part
    image: Image | None = None
    created: bool = False  # False when the same file was already stored
    # What the after-store handlers queued for it (the AI second opinions); None when it was already there.
    followups: list | None = None
    patient_created: bool = False
    study_created: bool = False
    error: str = ""
    # Kept aside for an administrator: it names a patient on record but does not match them.
    held: HeldInstance | None = None
    # What a network peer may be told (never names another patient's record); "" when as ``error``.
    peer_error: str = ""
    fault: bool = False  # the failure was ours, not the file's: sending it again may work

    @property
    def stored(self) -> bool:
        return self.image is not None


class IntakeRejected(ImageRejected):
    """A file rejected an all-or-nothing intake; nothing was stored."""

    def __init__(self, filename: str, reason: str):
        super().__init__(reason)
        self.filename = filename


def files_intake(
    *,
    files: Sequence[IncomingFile],
    source: ImageSource | str,
    uploaded_by: User | None = None,
    study: Study | None = None,
    batch: Batch = Batch.EACH_FILE,
    peer: str = "",
    confirmed_patient: Patient | None = None,
) -> list[Intake]:
    """Check, store and announce files; one verdict per file, in order.

    With ``study`` every file goes into that study (a DICOM file must name its patient);
    without, only DICOM files are accepted, each filed by its own tags. A DICOM file filed by
    its tags that does not match the records (its PatientID names a patient with another name
    or birth date, or its study is another patient's) is not filed but held for an
    administrator (``Intake.held``); into a given study it is refused. With
    ``Batch.ALL_OR_NOTHING`` the first rejected file raises ``IntakeRejected`` and nothing
    is stored or held; with ``Batch.EACH_FILE`` each file gets its own savepoint and verdict,
    and only a database outage (no verdict on any file) is raised. ``peer`` names the DICOM node
    that sent the files; ``confirmed_patient`` is a patient an administrator has confirmed the
    files belong to, whatever name or birth date they carry.
    """
    options = {"study": study, "source": source, "uploaded_by": uploaded_by, "confirmed_patient": confirmed_patient}
    if batch == Batch.ALL_OR_NOTHING:
        return _all_or_nothing(files, **options)
    return [_each(file, peer=peer, **options) for file in files]


def image_upload(*, study: Study, data: bytes, filename: str = "", uploaded_by: User | None = None) -> Intake:
    """One file into one study. Raises ImageRejected (nothing stored) with the reason."""
    [intake] = files_intake(
        files=[IncomingFile.from_bytes(data, filename)],
        source=ImageSource.UPLOAD,
        uploaded_by=uploaded_by,
        study=study,
        batch=Batch.ALL_OR_NOTHING,
    )
    return intake


def _name(file: IncomingFile) -> str:
    return display_filename(file.filename) or "file"


def _check(file: IncomingFile, *, study: Study | None) -> CheckedImage | CheckedDicom:
    """The rules every file meets, whichever way it came in. Raises ImageRejected.

    A DICOM instance may be up to ``MEDPORTAL_MAX_DICOM_BYTES`` (enhanced multi-frame objects are
    large), a picture up to ``MEDPORTAL_MAX_UPLOAD_BYTES``; a file over its limit is refused by its
    size and its first bytes, unread. A DICOM file that can be opened is read from there in chunks
    (``dicom_check_file``), never whole unless it is small.
    """
    picture_limit, dicom_limit = settings.MEDPORTAL_MAX_UPLOAD_BYTES, settings.MEDPORTAL_MAX_DICOM_BYTES
    _size_check(file.size, max(picture_limit, dicom_limit))
    dicom = looks_like_dicom(file.head()) if file.head is not None else None
    if file.size > picture_limit and dicom is False:
        _size_check(file.size, picture_limit)
    if dicom and file.open is not None:
        _size_check(file.size, dicom_limit)
        return dicom_check_file(open=file.open, size=file.size, filename=file.filename)
    data = file.read()
    _size_check(len(data), dicom_limit if looks_like_dicom(data) else picture_limit)
    if looks_like_dicom(data):
        return dicom_check(data=data, filename=file.filename)
    checked = image_check(data=data, filename=file.filename)
    if study is None:
        kind = checked.decoded.content_type.removeprefix("image/").upper()
        raise ImageRejected(
            f"This is a {kind} image: only DICOM files can be filed without a study, as their tags "
            "name the patient and study. Upload it to its study instead."
        )
    return checked


def _size_check(size: int, limit: int) -> None:
    if size > limit:
        raise ImageRejected(f"The file is {size:,} bytes; the limit is {limit:,} bytes.")


def _store(
    checked: Sequence[CheckedImage | CheckedDicom],
    names: Sequence[str],
    *,
    study: Study | None,
    source: ImageSource | str,
    uploaded_by: User | None,
    confirmed_patient: Patient | None,
    stored: list[Intake],
) -> list[Intake]:
    """Store checked files: DICOM one instance at a time, PNG and JPEG all in one go.

    Each verdict is appended to ``stored`` as soon as it is made, so a caller whose transaction
    then fails knows which files to remove.
    """
    verdicts: dict[int, Intake] = {}
    for index, item in enumerate(checked):
        if isinstance(item, CheckedDicom):
            try:
                result = dicom_store(
                    checked=item,
                    source=source,
                    uploaded_by=uploaded_by,
                    study=study,
                    confirmed_patient=confirmed_patient,
                )
            except ImageRejected as exc:
                raise IntakeRejected(names[index], str(exc)) from exc
            verdicts[index] = Intake(
                filename=names[index],
                image=result.image,
                created=result.created,
                followups=result.followups,
                patient_created=result.patient_created,
                study_created=result.study_created,
            )
            stored.append(verdicts[index])
    pictures = [(index, item) for index, item in enumerate(checked) if isinstance(item, CheckedImage)]
    if pictures:
        results = images_store(study=study, images=[item for _, item in pictures], uploaded_by=uploaded_by)
        for (index, _), result in zip(pictures, results, strict=True):
            verdicts[index] = Intake(
                filename=names[index], image=result.image, created=result.created, followups=result.followups
            )
            stored.append(verdicts[index])
    return [verdicts[index] for index in range(len(checked))]


def _each(file: IncomingFile, *, study: Study | None, source, uploaded_by, confirmed_patient, peer: str) -> Intake:
    name = _name(file)
    stored: list[Intake] = []
    checked = None
    try:
        checked = _check(file, study=study)
        # A savepoint per file: one file's failure never undoes or blocks the others.
        with transaction.atomic():
            [intake] = _store(
                [checked],
                [name],
                study=study,
                source=source,
                uploaded_by=uploaded_by,
                confirmed_patient=confirmed_patient,
                stored=stored,
            )
    except ImageRejected as exc:
        conflict = exc if isinstance(exc, IdentityConflict) else exc.__cause__
        if not isinstance(conflict, IdentityConflict):
            return Intake(filename=name, error=str(exc))
        if study is not None or not isinstance(checked, CheckedDicom):
            return Intake(filename=name, error=str(exc), peer_error=IdentityConflict.PEER_MESSAGE)
        held = dicom_hold(checked=checked, conflict=conflict, source=source, uploaded_by=uploaded_by, peer=peer)
        return Intake(
            filename=name,
            error=f"{conflict} It is held for an administrator to reconcile.",
            peer_error=IdentityConflict.HELD_PEER_MESSAGE,
            held=held,
        )
    except DatabaseError:
        raise  # an outage is not the file's fault, and the next file would meet it too
    except Exception:
        logger.exception("Intake of %r failed", name)
        _discard(stored)
        return Intake(filename=name, error=UNREADABLE, fault=True)
    return intake


def _all_or_nothing(
    files: Sequence[IncomingFile], *, study: Study | None, source, uploaded_by, confirmed_patient
) -> list[Intake]:
    names = [_name(file) for file in files]
    # Every file is checked before any is stored, so a rejected one usually costs no storage at all.
    checked = []
    for file, name in zip(files, names, strict=True):
        try:
            checked.append(_check(file, study=study))
        except ImageRejected as exc:
            raise IntakeRejected(name, str(exc)) from exc
    stored: list[Intake] = []
    try:
        with transaction.atomic():
            return _store(
                checked,
                names,
                study=study,
                source=source,
                uploaded_by=uploaded_by,
                confirmed_patient=confirmed_patient,
                stored=stored,
            )
    except BaseException:
        # The rows of the files stored before the failure are rolled back; their new files go too.
        _discard(stored)
        raise


def _discard(stored: Sequence[Intake]) -> None:
    try:
        for intake in stored:
            if intake.created:
                blob_discard(StoredBlob(name=intake.image.file.name, created=True))
    except DatabaseError:
        # The database is gone too; the original error matters more than a leftover file.
        logger.warning("Could not remove the files of a failed intake", exc_info=True)
