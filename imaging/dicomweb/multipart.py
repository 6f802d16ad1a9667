"""multipart/related bodies, as DICOMweb sends and expects them (RFC 2387).

A body received is read from its stream a chunk at a time and each part spooled to a temporary
file: a STOW-RS request of any size costs the memory of a chunk, never the body's.
"""

import io
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from django.utils.http import parse_header_parameters

CHUNK = 64 * 1024
# A part's bytes stay in memory up to this size, beyond it on disk.
SPOOL_BYTES = 256 * 1024
MAX_HEADER_BYTES = 16 * 1024


class MultipartError(ValueError):
    """The body is not the multipart/related message its Content-Type announces."""


@dataclass(frozen=True)
class Part:
    content_type: str
    data: bytes


@dataclass(frozen=True)
class SpooledPart:
    """A part received: its bytes are in ``file`` (memory up to SPOOL_BYTES, then disk)."""

    content_type: str
    file: IO[bytes]
    size: int

    def read(self, limit: int = -1) -> bytes:
        self.file.seek(0)
        return self.file.read(limit)


def _headers(raw: bytes) -> dict[str, str]:
    headers = {}
    for line in raw.decode("latin-1").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _boundary_and_type(content_type: str) -> tuple[bytes, str]:
    media_type, params = parse_header_parameters(content_type or "")
    if media_type.lower() != "multipart/related":
        raise MultipartError("The request must be multipart/related.")
    boundary = params.get("boundary", "").strip('"')
    if not boundary:
        raise MultipartError("The multipart/related Content-Type has no boundary.")
    return boundary.encode("latin-1"), params.get("type", "").strip('"')


def receive_multipart_related(stream, content_type: str) -> tuple[str, list[SpooledPart]]:
    """The root ``type`` parameter and the parts of a multipart/related body read from ``stream``.

    Nothing is returned from a body that is not closed by its final boundary: a truncated request
    stores none of its parts. The caller closes the parts' files (``close_parts``).
    """
    boundary, root_type = _boundary_and_type(content_type)
    delimiter = b"\r\n--" + boundary
    keep = len(delimiter)  # bytes held back: the start of a delimiter split across two reads
    buffer = b"\r\n"  # the first delimiter may open the body without a preceding CRLF
    parts: list[SpooledPart] = []
    part: tuple[str, IO[bytes]] | None = None  # the part being received
    ended = False

    def more() -> bool:
        nonlocal buffer, ended
        chunk = b"" if ended else stream.read(CHUNK)
        ended = not chunk
        buffer += chunk
        return not ended

    try:
        while True:
            at = buffer.find(delimiter)
            if at < 0:
                if part is not None and len(buffer) > keep:
                    part[1].write(buffer[:-keep])
                buffer = buffer[-keep:]
                if not more():
                    raise MultipartError("The multipart body is not closed by its final boundary (is it truncated?).")
                continue
            if part is not None:
                part[1].write(buffer[:at])
                parts.append(SpooledPart(content_type=part[0], file=part[1], size=part[1].tell()))
                part = None
            buffer = buffer[at + len(delimiter) :]
            while len(buffer) < 2 and more():
                pass
            if buffer.startswith(b"--"):
                return root_type, parts
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                if len(buffer) > MAX_HEADER_BYTES or not more():
                    raise MultipartError("A part of the multipart body has no header/body separator.")
            headers = _headers(buffer[:end])
            buffer = buffer[end + 4 :]
            # Closed by close_parts (or below, on an error): the caller reads the parts after this returns.
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
            part = (headers.get("content-type", root_type), spool)
    except BaseException:
        close_parts(parts)
        if part is not None:
            part[1].close()
        raise


def close_parts(parts: Iterable[SpooledPart]) -> None:
    for part in parts:
        part.file.close()


def parse_multipart_related(body: bytes, content_type: str) -> tuple[str, list[Part]]:
    """The root ``type`` parameter and the parts of a multipart/related body held in memory (a response read back)."""
    root_type, spooled = receive_multipart_related(io.BytesIO(body), content_type)
    try:
        return root_type, [Part(content_type=part.content_type, data=part.read()) for part in spooled]
    finally:
        close_parts(spooled)


def multipart_related_stream(
    parts: Iterable[tuple[str, Iterable[bytes]]], *, root_type: str
) -> tuple[Iterator[bytes], str]:
    """A multipart/related body as a generator, and its Content-Type header value.

    Each part is a content type and the chunks of its data, both taken only when the body is
    read: a response built from this holds one chunk at a time, never the whole body.
    """
    boundary = uuid.uuid4().hex

    def body() -> Iterator[bytes]:
        for content_type, chunks in parts:
            yield f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode("latin-1")
            yield from chunks
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode("latin-1")

    return body(), f'multipart/related; type="{root_type}"; boundary={boundary}'


def build_multipart_related(parts: list[tuple[str, bytes]], *, root_type: str) -> tuple[bytes, str]:
    """A multipart/related body in one piece (for small bodies, e.g. a client's STOW request)."""
    body, content_type = multipart_related_stream(
        ((part_type, (data,)) for part_type, data in parts), root_type=root_type
    )
    return b"".join(body), content_type
