"""Every upload path other than C-STORE holds an upload in bounded memory.

The upload page, the Import DICOM page, the REST upload and STOW-RS are each sent a body made as
it is read (nothing of it exists before the server asks for it):

- over MEDPORTAL_MAX_REQUEST_BYTES, it is refused with 413 before a single byte is read;
- within it but with a file over MEDPORTAL_MAX_UPLOAD_BYTES, it is streamed to disk, the file is
  refused by its size without being read, and the memory the process used at its peak stays far
  below the file's size.

Either way nothing is stored. The C-STORE receiver has its own tests (tests/dicom/test_receiver.py).
"""

import io
import tracemalloc
from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from imaging.dicomweb.multipart import build_multipart_related, receive_multipart_related
from imaging.models import Image
from patients.models import Patient
from tests.factories import StudyFactory
from tests.support.images import stored_files

pytestmark = pytest.mark.django_db

BOUNDARY = "bounded-memory-test"
FILE_LIMIT = 1024 * 1024
REQUEST_LIMIT = 40 * 1024 * 1024
BIG_FILE = 24 * 1024 * 1024  # within the request limit, 24 times the file limit
HUGE_BODY = 4 * 1024 * 1024 * 1024  # 4 GiB: never made, never read


class LazyBody:
    """A request body made as it is read: ``head``, ``size`` zero bytes, ``tail``; counts what was read."""

    def __init__(self, head: bytes, size: int, tail: bytes):
        self.head, self.size, self.tail = head, size, tail
        self.length = len(head) + size + len(tail)
        self.position = 0

    def read(self, n: int = -1) -> bytes:
        end = self.length if n is None or n < 0 else min(self.length, self.position + n)
        out = bytearray()
        while self.position < end:
            if self.position < len(self.head):
                piece = self.head[self.position : end]
            elif self.position < len(self.head) + self.size:
                piece = bytes(min(end, len(self.head) + self.size) - self.position)
            else:
                start = self.position - len(self.head) - self.size
                piece = self.tail[start : start + end - self.position]
            out += piece
            self.position += len(piece)
        return bytes(out)

    def readline(self, *args) -> bytes:  # WSGI input has it; nothing here reads lines
        raise AssertionError("the body is read in chunks, never by line")


def _form_body(field: str, size: int) -> tuple[LazyBody, str]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="big.dcm"\r\n'
        "Content-Type: application/dicom\r\n\r\n"
    ).encode()
    return LazyBody(head, size, f"\r\n--{BOUNDARY}--\r\n".encode()), f"multipart/form-data; boundary={BOUNDARY}"


def _stow_body(size: int) -> tuple[LazyBody, str]:
    head = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    content_type = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    return LazyBody(head, size, f"\r\n--{BOUNDARY}--\r\n".encode()), content_type


@dataclass(frozen=True)
class Path:
    name: str
    url: object  # (study) -> str
    body: object  # (size) -> (LazyBody, content type)
    refusal: bytes  # how the answer names the size refusal of one file


PATHS = [
    Path("upload page", lambda study: f"/studies/{study.id}/upload/", lambda n: _form_body("files", n), b"limit is"),
    Path("Import DICOM page", lambda study: "/dicom/import/", lambda n: _form_body("files", n), b"limit is"),
    Path(
        "REST upload", lambda study: f"/api/v1/studies/{study.id}/images/", lambda n: _form_body("file", n), b"limit is"
    ),
    # STOW-RS answers with a failure code, not with the reason: out of resources (0xA700), over the size limit.
    Path("STOW-RS", lambda study: "/dicomweb/studies", _stow_body, b'"00081197": {"vr": "US", "Value": [42752]}'),
]


@pytest.fixture
def limits(settings):
    settings.MEDPORTAL_MAX_UPLOAD_BYTES = FILE_LIMIT
    settings.MEDPORTAL_MAX_DICOM_BYTES = FILE_LIMIT
    settings.MEDPORTAL_MAX_REQUEST_BYTES = REQUEST_LIMIT


def _post(client, url: str, body: LazyBody, content_type: str):
    return client.generic(
        "POST",
        url,
        b"",
        HTTP_ACCEPT="application/json",
        **{"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(body.length), "wsgi.input": body},
    )


def _stored() -> tuple:
    """What a request could leave behind: images, patients (a DICOM file names its own) and files."""
    return Image.objects.count(), Patient.objects.count(), stored_files()


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_a_body_over_the_request_limit_is_refused_before_it_is_read(client, staff_user, limits, path):
    client.force_login(staff_user)
    study = StudyFactory()
    before = _stored()
    body, content_type = path.body(HUGE_BODY)
    response = _post(client, path.url(study), body, content_type)
    assert response.status_code == 413
    assert f"the limit is {REQUEST_LIMIT:,} bytes".encode() in response.content
    assert body.position == 0  # not one byte of the body was read
    if path.name == "REST upload":
        assert response.json()["error"]["code"] == "request_too_large"
    assert _stored() == before


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_a_file_over_the_limit_streams_to_disk_and_is_refused_unread(client, staff_user, limits, path, monkeypatch):
    client.force_login(staff_user)
    study = StudyFactory()
    spooled = []
    if path.name != "STOW-RS":  # Django's form parser: the file must go to a temporary file
        complete = TemporaryFileUploadHandler.file_complete

        def file_complete(handler, file_size):
            spooled.append(handler.file)
            return complete(handler, file_size)

        monkeypatch.setattr(TemporaryFileUploadHandler, "file_complete", file_complete)
    # A first small request loads what any first request loads (URLs, templates), so that the peak
    # measured is the upload's alone.
    _post(client, path.url(study), *path.body(1024))
    before = _stored()
    body, content_type = path.body(BIG_FILE)

    tracemalloc.start()
    try:
        response = _post(client, path.url(study), body, content_type)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert response.status_code in (200, 400, 409), response.content
    assert path.refusal in response.content
    assert body.position == body.length  # read through, to a temporary file, not refused by its header
    assert peak < BIG_FILE / 12, f"{peak:,} bytes at the peak for a {BIG_FILE:,}-byte file"
    if path.name != "STOW-RS":
        assert [type(file) for file in spooled] == [TemporaryUploadedFile]
    assert _stored() == before


def test_stow_parts_are_read_in_chunks_whatever_the_reads_cut(db):
    parts = [("application/dicom", bytes(range(256)) * 900), ("application/dicom", b""), ("text/plain", b"--x\r\n")]
    body, content_type = build_multipart_related(parts, root_type="application/dicom")

    class Trickle(io.BytesIO):
        def read(self, n=-1):  # 7 bytes at a time: every delimiter is cut somewhere
            return super().read(7)

    root_type, received = receive_multipart_related(Trickle(body), content_type)
    assert root_type == "application/dicom"
    assert [(part.content_type, part.read()) for part in received] == parts
