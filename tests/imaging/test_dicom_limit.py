"""A DICOM instance has a size limit of its own (MEDPORTAL_MAX_DICOM_BYTES, large enough for enhanced
multi-frame objects), separate from the limit on pictures (MEDPORTAL_MAX_UPLOAD_BYTES), on every way in."""

import io
import random
from dataclasses import replace

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage
from rest_framework.test import APIClient

from imaging.dicomweb.multipart import build_multipart_related
from imaging.intake import IncomingFile, files_intake
from imaging.models import Image, ImageSource
from tests.dicom.support import shipped_bytes
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

PICTURES = 20_000  # the CT below is 39 kB: over the picture limit
CT = "CT_small.dcm"


@pytest.fixture
def limits(settings):
    settings.MEDPORTAL_MAX_UPLOAD_BYTES = PICTURES
    settings.MEDPORTAL_MAX_DICOM_BYTES = 100_000
    return settings


def _noise_png(side: int) -> bytes:
    buffer = io.BytesIO()
    noise = random.Random(7).randbytes(side * side)  # noise does not compress: the file is as large as its pixels
    PILImage.frombytes("L", (side, side), noise).save(buffer, format="PNG")
    return buffer.getvalue()


def _unreadable(file: IncomingFile) -> IncomingFile:
    def read():
        raise AssertionError("a file over its limit is refused without being read")

    return replace(file, read=read)


@pytest.mark.parametrize("make", ["bytes", "path", "upload"])
def test_a_dicom_instance_over_the_picture_limit_is_stored_within_the_dicom_limit(limits, make, tmp_path):
    data = shipped_bytes(CT)
    assert PICTURES < len(data) < limits.MEDPORTAL_MAX_DICOM_BYTES
    if make == "path":
        (tmp_path / "ct.dcm").write_bytes(data)
        file = IncomingFile.from_path(tmp_path / "ct.dcm")
    elif make == "upload":
        file = IncomingFile.from_upload(SimpleUploadedFile("ct.dcm", data))
    else:
        file = IncomingFile.from_bytes(data)
    [intake] = files_intake(files=[file], source=ImageSource.C_STORE)
    assert intake.stored, intake.error
    assert intake.image.size_bytes == len(data)

    limits.MEDPORTAL_MAX_DICOM_BYTES = PICTURES
    [refused] = files_intake(files=[_unreadable(IncomingFile.from_bytes(data))], source=ImageSource.C_STORE)
    assert refused.error == f"The file is {len(data):,} bytes; the limit is {PICTURES:,} bytes."


def test_a_picture_over_its_limit_is_refused_unread_even_within_the_dicom_limit(limits):
    picture = _noise_png(160)
    assert PICTURES < len(picture) < limits.MEDPORTAL_MAX_DICOM_BYTES
    file = _unreadable(IncomingFile.from_bytes(picture, "big.png"))
    [intake] = files_intake(files=[file], source=ImageSource.UPLOAD, study=StudyFactory())
    assert intake.error == f"The file is {len(picture):,} bytes; the limit is {PICTURES:,} bytes."
    assert not Image.objects.exists()


def test_stow_rs_takes_a_request_as_large_as_a_dicom_instance(limits, staff_user):
    """A STOW-RS body over MEDPORTAL_MAX_REQUEST_BYTES but within one DICOM instance's limit is read;
    the same size elsewhere is answered 413 unread."""
    limits.MEDPORTAL_MAX_REQUEST_BYTES = 30_000
    data = shipped_bytes(CT)
    body, content_type = build_multipart_related([("application/dicom", data)], root_type="application/dicom")
    assert len(body) > limits.MEDPORTAL_MAX_REQUEST_BYTES
    client = APIClient()
    client.force_authenticate(staff_user)
    response = client.post("/dicomweb/studies", data=body, content_type=content_type)
    assert response.status_code == 200, response.content
    uid = pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID
    assert Image.objects.get().sop_instance_uid == uid

    url = f"/api/v1/studies/{StudyFactory().id}/images/"
    upload = client.post(url, {"file": [SimpleUploadedFile("ct.dcm", data)]}, format="multipart")
    assert upload.status_code == 413
