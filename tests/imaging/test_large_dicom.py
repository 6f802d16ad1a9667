"""A large DICOM instance within MEDPORTAL_MAX_DICOM_BYTES is taken in with bounded memory on every way in.

A 64 MiB multi-frame instance (128 uncompressed frames) is sent by the Import DICOM page, the REST
upload, STOW-RS and C-STORE (DCMTK's storescu). It is stored byte for byte as sent, and the memory
the process allocated at its peak while taking it in stays far below its size: it is parsed by its
header, hashed and stored from its file in chunks, its pixels never read into memory.
"""

import datetime
import hashlib
import subprocess
import tracemalloc
from pathlib import Path

import pydicom
import pytest
from django.core.files.storage import default_storage

from imaging.dicom.receiver import ReceiverConfig, receiver_start
from imaging.dicom.services import DECODE_IN_INTAKE_BYTES
from imaging.intake import IncomingFile, files_intake
from imaging.models import DicomPeer, Image, ImageSource
from tests.dicom.support import dataset_bytes, shipped_bytes, shipped_path
from tests.dicom.synthetic import large_multiframe, us_cine
from tests.factories import PatientFactory, StudyFactory
from tests.support.dcmtk import require_dcmtk

BOUNDARY = "large-dicom-test"
PATIENT = {"id": "BIG-0001", "name": "Large^Lena"}
BIG = 64 * 1024 * 1024
PEAK = 16 * 1024 * 1024  # a quarter of the file: what it would take to hold it is never reached


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("large") / "multiframe.dcm"
    large_multiframe(path, patient=PATIENT, frames=128, rows=512, columns=512)
    assert path.stat().st_size > max(BIG, DECODE_IN_INTAKE_BYTES)
    return path


@pytest.fixture
def limits(settings):
    settings.MEDPORTAL_MAX_DICOM_BYTES = 2 * BIG
    settings.MEDPORTAL_MAX_REQUEST_BYTES = 3 * BIG


def _digest(handle) -> str:
    return hashlib.file_digest(handle, "sha256").hexdigest()


def _past_file_meta(handle):
    """``handle`` moved past its preamble and file meta group, to the data set."""
    handle.seek(128 + 4 + 8)  # "DICM", then (0002,0000) UL: tag, VR, length
    handle.seek(128 + 4 + 12 + int.from_bytes(handle.read(4), "little"))
    return handle


def _stored_as_sent(image: Image, path: Path, *, data_set_only: bool = False) -> None:
    """Stored byte for byte as sent; ``data_set_only``: the data set, under file meta of the receiver's own."""
    with path.open("rb") as sent, default_storage.open(image.file.name, "rb") as stored:
        if data_set_only:
            _past_file_meta(sent), _past_file_meta(stored)
        assert _digest(stored) == _digest(sent)
    if not data_set_only:
        assert image.size_bytes == path.stat().st_size
    assert (image.number_of_frames, image.width, image.height) == (128, 512, 512)
    assert image.analysable  # its pixels are whole: the AI reads them later, within the pixel budget


class FileBody:
    """A request body read from ``head``, the file at ``path`` and ``tail``, a chunk at a time."""

    def __init__(self, head: bytes, path: Path, tail: bytes):
        self.pieces = [head, path, tail]
        self.length = len(head) + path.stat().st_size + len(tail)
        self.handle = None

    def read(self, n: int = -1) -> bytes:
        while self.pieces:
            piece = self.pieces[0]
            if isinstance(piece, Path):
                self.handle = self.handle or piece.open("rb")
                chunk = self.handle.read(n if n and n > 0 else -1)
                if chunk:
                    return chunk
                self.handle.close()
            elif piece:
                n = len(piece) if n is None or n < 0 else n
                self.pieces[0] = piece[n:]
                return piece[:n]
            self.pieces.pop(0)
        return b""

    def readline(self, *args) -> bytes:  # WSGI input has it; nothing here reads lines
        raise AssertionError("the body is read in chunks, never by line")


def _form(field: str, path: Path) -> tuple[FileBody, str]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{path.name}"\r\n'
        "Content-Type: application/dicom\r\n\r\n"
    ).encode()
    return FileBody(head, path, f"\r\n--{BOUNDARY}--\r\n".encode()), f"multipart/form-data; boundary={BOUNDARY}"


def _stow(path: Path) -> tuple[FileBody, str]:
    head = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    content_type = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    return FileBody(head, path, f"\r\n--{BOUNDARY}--\r\n".encode()), content_type


def _post(client, url: str, body: FileBody, content_type: str):
    return client.generic(
        "POST",
        url,
        b"",
        HTTP_ACCEPT="application/json",
        **{"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(body.length), "wsgi.input": body},
    )


PATHS = {
    "Import DICOM page": (lambda study: "/dicom/import/", lambda path: _form("files", path)),
    "REST upload": (lambda study: f"/api/v1/studies/{study.id}/images/", lambda path: _form("file", path)),
    "STOW-RS": (lambda study: "/dicomweb/studies", _stow),
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", PATHS)
def test_a_large_instance_is_stored_as_sent_in_bounded_memory(client, staff_user, limits, big_file, name, tmp_path):
    url, body = PATHS[name]
    client.force_login(staff_user)
    patient = PatientFactory(mrn=PATIENT["id"], family_name="Large", given_name="Lena")
    assert patient.birth_date == datetime.date(1970, 1, 1)
    study = StudyFactory(patient=patient)
    # A first small request loads what any first request loads (URLs, templates, the parsers), so that
    # the peak measured is the instance's alone.
    small = tmp_path / "small.dcm"
    small.write_bytes(b"not dicom")
    _post(client, url(study), *body(small))

    tracemalloc.start()
    try:
        response = _post(client, url(study), *body(big_file))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert response.status_code in (200, 201), response.content[:2000]
    _stored_as_sent(Image.objects.get(), big_file)
    assert peak < PEAK, f"{peak:,} bytes at the peak for a {big_file.stat().st_size:,}-byte instance"


@pytest.mark.django_db(transaction=True)
def test_a_large_instance_sent_by_c_store_is_stored_as_sent_in_bounded_memory(limits, big_file):
    storescu = require_dcmtk("storescu")["storescu"]
    DicomPeer.objects.create(ae_title="MODALITY", network="127.0.0.1")
    server = receiver_start(ReceiverConfig(ae_title="MEDPORTAL", host="127.0.0.1", port=0))
    try:
        command = [storescu, "-aet", "MODALITY", "-aec", "MEDPORTAL", "127.0.0.1", str(server.server_address[1])]
        # The receiver runs in this process (its threads are traced too); storescu is a process of its own.
        tracemalloc.start()
        try:
            result = subprocess.run([*command, str(big_file)], capture_output=True, text=True, timeout=300)  # noqa: S603
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stdout + result.stderr
    image = Image.objects.get()
    assert image.source == "c-store"
    # C-STORE sends the data set alone: the receiver writes it after file meta that names its own implementation.
    _stored_as_sent(image, big_file, data_set_only=True)
    assert peak < PEAK, f"{peak:,} bytes at the peak for a {big_file.stat().st_size:,}-byte instance"


@pytest.fixture
def read_by_header(monkeypatch):
    """Every instance is taken in as a large one is: by its header, from its file."""
    monkeypatch.setattr("imaging.dicom.services.DECODE_IN_INTAKE_BYTES", 0)


def _intake(tmp_path: Path, data: bytes):
    path = tmp_path / "instance.dcm"
    path.write_bytes(data)
    [intake] = files_intake(files=[IncomingFile.from_path(path)], source=ImageSource.C_STORE)
    return intake, path


@pytest.mark.django_db
def test_read_by_its_header_an_instance_is_stored_as_sent(read_by_header, tmp_path):
    intake, path = _intake(tmp_path, shipped_bytes("CT_small.dcm"))
    assert intake.stored, intake.error
    assert intake.image.analysable and intake.image.size_bytes == path.stat().st_size
    with path.open("rb") as sent, default_storage.open(intake.image.file.name, "rb") as stored:
        assert stored.read() == sent.read()


@pytest.mark.django_db
def test_read_by_its_header_pixel_data_shorter_than_its_header_says_is_refused(read_by_header, tmp_path):
    dataset = pydicom.dcmread(shipped_path("CT_small.dcm"))
    dataset.Rows += 1  # one row more than the pixel data holds
    intake, _ = _intake(tmp_path, dataset_bytes(dataset))
    assert not intake.stored and "corrupt or truncated" in intake.error
    assert not Image.objects.exists()


@pytest.mark.django_db
def test_read_by_its_header_compressed_pixels_are_stored_for_a_decoder_to_read_later(read_by_header, tmp_path):
    intake, _ = _intake(tmp_path, us_cine(patient={"id": "US-0001", "name": "Sound^Sam"}))
    assert intake.stored, intake.error
    assert intake.image.number_of_frames == 8
    # Pillow decodes JPEG baseline: analysable, decoded only when the AI or a viewer reads it.
    assert intake.image.analysable
