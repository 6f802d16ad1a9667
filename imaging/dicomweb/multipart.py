"""multipart/related bodies, as DICOMweb sends and expects them (RFC 2387)."""

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.utils.http import parse_header_parameters


class MultipartError(ValueError):
    """The body is not the multipart/related message its Content-Type announces."""


@dataclass(frozen=True)
class Part:
    content_type: str
    data: bytes


def _headers(raw: bytes) -> dict[str, str]:
    headers = {}
    for line in raw.decode("latin-1").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def parse_multipart_related(body: bytes, content_type: str) -> tuple[str, list[Part]]:
    """The root ``type`` parameter and the parts of a multipart/related body."""
    media_type, params = parse_header_parameters(content_type or "")
    if media_type.lower() != "multipart/related":
        raise MultipartError("The request must be multipart/related.")
    boundary = params.get("boundary", "").strip('"')
    if not boundary:
        raise MultipartError("The multipart/related Content-Type has no boundary.")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    # The first delimiter may open the body without a preceding CRLF.
    chunks = (b"\r\n" + body).split(delimiter)
    parts = []
    closed = False
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            closed = True
            break
        head, sep, payload = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise MultipartError("A part of the multipart body has no header/body separator.")
        headers = _headers(head)
        parts.append(Part(content_type=headers.get("content-type", params.get("type", "")), data=payload))
    if not closed:
        raise MultipartError("The multipart body is not closed by its final boundary (is it truncated?).")
    return params.get("type", "").strip('"'), parts


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
