"""Every way in for a file gives it the same verdict: the upload page, the REST upload, the Import
DICOM page, DICOMweb STOW-RS and the C-STORE receiver (driven by a real SCU).

The page and the REST upload add files to a study; the others file DICOM by its own tags, so a
picture (PNG, JPEG) without a study is refused there for that reason alone. C-STORE carries only
DICOM data sets, so only the DICOM files are sent through it.
"""

import io
import random
from dataclasses import dataclass

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from PIL import Image as PILImage
from pydicom import Dataset
from pynetdicom import AE, AllStoragePresentationContexts
from rest_framework.test import APIClient

from imaging.dicom.receiver import ReceiverConfig, receiver_start
from imaging.dicomweb.multipart import build_multipart_related
from imaging.models import DicomPeer, Image
from tests.dicom.support import chest_radiograph_dataset, dataset_bytes, retagged
from tests.factories import StudyFactory
from tests.support.images import png_claiming_size, stored_files, truncated_png

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 20_000  # bytes; every good file is smaller, the "too large" ones are larger
NO_STUDY = "only DICOM files can be filed without a study"


def _picture(size: tuple[int, int], fmt: str) -> bytes:
    # Random pixels, so the file is as large as its pixel count (PNG would squeeze a pattern).
    noise = PILImage.frombytes("L", size, random.Random(7).randbytes(size[0] * size[1]))
    buffer = io.BytesIO()
    noise.save(buffer, format=fmt)
    return buffer.getvalue()


@dataclass(frozen=True)
class Case:
    """A file and the verdict every entry point must give it (``None``: stored)."""

    name: str
    build: object  # (patient on record) -> bytes
    rejected: str | None
    dicom: bool = False
    picture: bool = False  # a PNG or JPEG: refused where no study is given


def _chest(patient) -> bytes:
    return dataset_bytes(chest_radiograph_dataset(patient=patient))


def _identity(patient) -> dict:
    """The tags that file an instance under ``patient`` (identity checked: ID, name, birth date, sex)."""
    return {
        "PatientID": patient.mrn,
        "PatientName": f"{patient.family_name}^{patient.given_name}",
        "PatientBirthDate": patient.birth_date.strftime("%Y%m%d") if patient.birth_date else "",
        "PatientSex": patient.sex if patient.sex in ("M", "F", "O") else "",
    }


CASES = [
    Case("good.png", lambda patient: _picture((32, 32), "PNG"), None, picture=True),
    Case("good.jpg", lambda patient: _picture((32, 32), "JPEG"), None, picture=True),
    Case("good.dcm", _chest, None, dicom=True),
    Case("truncated.png", lambda patient: truncated_png(), "corrupt or truncated"),
    Case("notes.txt", lambda patient: b"This is a text file, not an image.\n" * 10, "not a PNG or JPEG image"),
    Case("bomb.png", lambda patient: png_claiming_size(60_000, 60_000), "too many pixels"),
    Case("large.png", lambda patient: _picture((256, 256), "PNG"), f"the limit is {LIMIT:,} bytes"),
    Case(
        "large.dcm",
        lambda patient: retagged("CT_small.dcm", PatientID=patient.mrn),
        f"the limit is {LIMIT:,} bytes",
        dicom=True,
    ),
    Case(
        "truncated-pixels.dcm",
        lambda patient: retagged("MR_truncated.dcm", PatientID=patient.mrn),
        "truncated",
        dicom=True,
    ),
    # Not an image (an RT Plan): stored like any instance, never analysed.
    Case("no-image.dcm", lambda patient: retagged("rtplan.dcm", **_identity(patient)), None, dicom=True),
    # Not even a storage SOP class; no C-STORE peer could offer it.
    Case(
        "not-storage.dcm",
        lambda patient: retagged("rtplan.dcm", PatientID=patient.mrn, SOPClassUID="1.2.840.10008.1.1"),
        "not of a storage SOP class",
    ),
    Case(
        "other-patient.dcm",
        lambda patient: dataset_bytes(chest_radiograph_dataset(patient_id="SOMEONE-ELSE")),
        None,
        dicom=True,
    ),
]


def _expected(case: Case, *, with_study: bool) -> str | None:
    if case.name == "other-patient.dcm":
        # Into a study it must name the study's patient; filed by its tags, it goes to its own.
        return "belongs to patient" if with_study else None
    if case.picture and not with_study:
        return NO_STUDY
    return case.rejected


@dataclass(frozen=True)
class Verdict:
    stored: bool
    message: str  # as much of the reason as the protocol carries ("" when it carries none)


def via_page(study, staff, name: str, data: bytes) -> Verdict:
    client = Client()
    client.force_login(staff)
    response = client.post(
        f"/studies/{study.id}/upload/", {"files": [_upload(name, data)]}, HTTP_ACCEPT="application/json"
    )
    [result] = response.json()["results"]
    return Verdict(result["ok"], result.get("error", ""))


def via_rest(study, staff, name: str, data: bytes) -> Verdict:
    client = APIClient()
    client.force_authenticate(staff)
    response = client.post(f"/api/v1/studies/{study.id}/images/", {"file": [_upload(name, data)]}, format="multipart")
    if response.status_code in (200, 201):
        return Verdict(True, "")
    assert response.status_code == 400, response.content
    return Verdict(False, response.json()["error"]["message"])


def via_import_page(study, staff, name: str, data: bytes) -> Verdict:
    client = Client()
    client.force_login(staff)
    response = client.post("/dicom/import/", {"files": [_upload(name, data)]}, HTTP_ACCEPT="application/json")
    [result] = response.json()["results"]
    return Verdict(result["ok"], result.get("error", ""))


def via_stow(study, staff, name: str, data: bytes) -> Verdict:
    client = APIClient()
    client.force_authenticate(staff)
    body, content_type = build_multipart_related([("application/dicom", data)], root_type="application/dicom")
    response = client.post("/dicomweb/studies", data=body, content_type=content_type)
    answer = Dataset.from_json(response.content.decode())
    if response.status_code == 200:
        assert len(answer.ReferencedSOPSequence) == 1
        return Verdict(True, "")
    assert response.status_code == 409, response.content
    # The file's fault: cannot understand, too large (out of resources) or not a storage SOP class.
    assert answer.FailedSOPSequence[0].FailureReason in (0xC000, 0xA700, 0x0122)
    return Verdict(False, "")  # STOW-RS carries a failure code, not the reason


@pytest.fixture
def receiver():
    DicomPeer.objects.create(ae_title="MODALITY1", network="127.0.0.1")
    server = receiver_start(ReceiverConfig(ae_title="MEDPORTAL", host="127.0.0.1", port=0))
    yield server.server_address[1]
    server.shutdown()


def via_c_store(port: int):
    def send(study, staff, name: str, data: bytes) -> Verdict:
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)
        scu = AE(ae_title="MODALITY1")
        scu.requested_contexts = [c for c in AllStoragePresentationContexts if c.abstract_syntax == dataset.SOPClassUID]
        assoc = scu.associate("127.0.0.1", port, ae_title="MEDPORTAL")
        assert assoc.is_established
        try:
            status = assoc.send_c_store(dataset)
        finally:
            assoc.release()
        if status.Status == 0x0000:
            return Verdict(True, "")
        if status.Status == 0xA700:  # out of resources: too large, refused before anything read it
            return Verdict(False, "")
        assert status.Status == 0xC000, hex(status.Status)  # cannot understand: the file's fault
        return Verdict(False, str(status.get("ErrorComment", "")))  # the reason, cut to 64 characters

    return send


def _upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


ENTRY_POINTS = {
    "page": (via_page, True),
    "rest": (via_rest, True),
    "import-page": (via_import_page, False),
    "stow-rs": (via_stow, False),
    "c-store": (None, False),
}
PAIRS = [
    pytest.param(entry, case, id=f"{entry}-{case.name}")
    for entry in ENTRY_POINTS
    for case in CASES
    if entry != "c-store" or case.dicom
]


@override_settings(MEDPORTAL_MAX_UPLOAD_BYTES=LIMIT, MEDPORTAL_MAX_DICOM_BYTES=LIMIT)
@pytest.mark.parametrize(("entry", "case"), PAIRS)
def test_every_entry_point_gives_a_file_the_same_verdict(request, entry, case, staff_user):
    send, with_study = ENTRY_POINTS[entry]
    if entry == "c-store":
        send = via_c_store(request.getfixturevalue("receiver"))
    study = StudyFactory(modality="CR", body_part="CHEST")
    data = case.build(study.patient)
    before_files, before_rows = stored_files(), Image.objects.count()

    verdict = send(study, staff_user, case.name, data)

    expected = _expected(case, with_study=with_study)
    if expected is None:
        assert verdict.stored, verdict.message
        assert Image.objects.count() == before_rows + 1
        return
    assert not verdict.stored
    if verdict.message or entry not in ("stow-rs", "c-store"):
        assert expected in verdict.message
    # A refused file leaves no row and no file behind.
    assert Image.objects.count() == before_rows and stored_files() == before_files
