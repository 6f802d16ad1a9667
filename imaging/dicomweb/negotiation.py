"""WADO-RS content negotiation (PS3.18 8.7): which transfer syntax and media type a client gets.

The Accept header lists media types with an optional ``transfer-syntax`` parameter; ``*`` means
"as stored", no parameter means the default (Explicit VR Little Endian for instances and
uncompressed frames). What cannot be provided is answered 406, never silently replaced.
"""

import io
from dataclasses import dataclass

import numpy as np
from django.utils.http import parse_header_parameters
from pydicom import Dataset
from pydicom.pixels import get_decoder, get_encoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.dicom.parsing import read_dataset

AS_STORED = "*"
OCTET_STREAM = "application/octet-stream"

# Uncompressed transfer syntaxes any instance can be re-encoded into (Big Endian is retired: read, never written).
UNCOMPRESSED_TARGETS = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)
# Lossless compression pydicom can do itself (pylibjpeg-rle, pyjpegls, pylibjpeg-openjpeg); lossy never.
LOSSLESS_TARGETS = (RLELossless, JPEGLSLossless, JPEG2000Lossless)

# PS3.18 table 8.7.3-2 (8.7.4 in newer editions): the media type of a compressed frame bitstream.
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.100": "video/mpeg",
    "1.2.840.10008.1.2.4.101": "video/mpeg",
    "1.2.840.10008.1.2.4.102": "video/mp4",
    "1.2.840.10008.1.2.4.103": "video/mp4",
    "1.2.840.10008.1.2.4.104": "video/mp4",
    "1.2.840.10008.1.2.4.105": "video/mp4",
    "1.2.840.10008.1.2.4.106": "video/mp4",
    "1.2.840.10008.1.2.4.107": "video/H265",
    "1.2.840.10008.1.2.4.108": "video/H265",
}
# Older names some clients still send for the same bitstreams.
_MEDIA_TYPE_ALIASES = {"image/x-dicom-rle": "image/dicom-rle", "image/x-jls": "image/jls"}


class NotAcceptable(Exception):
    """No media type and transfer syntax the client accepts can be provided (answer 406)."""


@dataclass(frozen=True)
class Accepted:
    """One entry of an Accept header: a media type (the multipart ``type`` when multipart) and syntax."""

    media_type: str
    transfer_syntax: str  # a UID, AS_STORED, or "" for the media type's default
    quality: float


def accepted(header: str) -> list[Accepted]:
    """The entries of an Accept header, best first (by q, then in the order written)."""
    entries = []
    for raw in (header or "").split(","):
        if not raw.strip():
            continue
        media_type, params = parse_header_parameters(raw.strip())
        media_type = media_type.lower()
        if media_type == "multipart/related":
            media_type = params.get("type", "*/*").strip('"').lower() or "*/*"
        try:
            quality = float(params.get("q", 1))
        except ValueError:
            quality = 1.0
        syntax = params.get("transfer-syntax", "").strip('"')
        entries.append(Accepted(_MEDIA_TYPE_ALIASES.get(media_type, media_type), syntax, quality))
    entries.sort(key=lambda entry: -entry.quality)
    return entries or [Accepted("*/*", "", 1.0)]


def _matches(offered: str, wanted: str) -> bool:
    if wanted in ("*/*", offered):
        return True
    return wanted.endswith("/*") and offered.split("/")[0] == wanted.split("/")[0]


def _decodable(syntax: str) -> bool:
    try:
        return get_decoder(UID(syntax)).is_available
    except (NotImplementedError, ValueError):
        return False


def _encodable(syntax: str) -> bool:
    try:
        return get_encoder(UID(syntax)).is_available
    except (NotImplementedError, ValueError):
        return False


def can_provide(*, stored: str, target: str, has_pixels: bool) -> bool:
    """Whether an instance stored in ``stored`` can be sent in ``target`` without loss."""
    if target in (AS_STORED, stored):
        return True
    stored_uid = UID(stored)
    if not has_pixels:
        # Nothing to compress: a compressed syntax is answered in Explicit VR Little Endian (``sent_syntax``).
        return target in UNCOMPRESSED_TARGETS or (UID(target).is_transfer_syntax and UID(target).is_compressed)
    if target in UNCOMPRESSED_TARGETS:
        return not stored_uid.is_compressed or _decodable(stored)
    if target in LOSSLESS_TARGETS:
        # Compressing an image that was lossy-compressed would pretend to a fidelity it has lost.
        return not stored_uid.is_compressed and _encodable(target)
    return False


def sent_syntax(target: str, *, stored: str, has_pixels: bool) -> str:
    """The syntax one instance goes out in when ``target`` was chosen for the request.

    An instance without pixel data (SR, KO, PDF, ...) asked for in a compressed syntax is sent in
    Explicit VR Little Endian, so a study can be retrieved whole in a compressed syntax.
    """
    if target == AS_STORED:
        return stored
    if not has_pixels and UID(target).is_compressed:
        return ExplicitVRLittleEndian
    return target


def instance_syntax(entries: list[Accepted], instances: list[tuple[str, bool]]) -> str:
    """The transfer syntax to send every one of ``instances`` (stored syntax, has pixels) in.

    Raises NotAcceptable when no accepted entry can be provided for all of them.
    """
    for entry in entries:
        if not _matches(DICOM_CONTENT_TYPE, entry.media_type):
            continue
        target = entry.transfer_syntax or ExplicitVRLittleEndian
        if all(can_provide(stored=stored, target=target, has_pixels=pixels) for stored, pixels in instances):
            return target
    raise NotAcceptable(
        "The instances cannot be sent in any transfer syntax asked for. Ask for transfer-syntax=* "
        "to receive them as stored, or for Explicit VR Little Endian (1.2.840.10008.1.2.1)."
    )


def frame_syntax(entries: list[Accepted], *, stored: str) -> tuple[str, str]:
    """The (media type, transfer syntax) frames stored in ``stored`` are sent in.

    Frames are sent as stored (their bitstream and its media type) or decoded to uncompressed
    little-endian octets; they are never re-compressed.
    """
    compressed = UID(stored).is_compressed
    stored_type = FRAME_MEDIA_TYPES.get(stored, OCTET_STREAM) if compressed else OCTET_STREAM
    as_stored = (stored_type, stored if compressed else ExplicitVRLittleEndian)
    for entry in entries:
        syntax = entry.transfer_syntax
        if syntax == AS_STORED or (entry.media_type == "*/*" and not syntax):
            # OHIF and most viewers ask for octet-stream with "*" and read the part's own type.
            if _matches(stored_type, entry.media_type) or entry.media_type == OCTET_STREAM:
                return as_stored
        elif compressed and _matches(stored_type, entry.media_type) and syntax in ("", stored):
            return as_stored
        elif (
            _matches(OCTET_STREAM, entry.media_type)
            and syntax in ("", ExplicitVRLittleEndian)
            and (not compressed or _decodable(stored))
        ):
            return OCTET_STREAM, ExplicitVRLittleEndian
    raise NotAcceptable(
        f"The frames are stored as {stored_type} ({stored}); they can be sent as stored "
        f"(transfer-syntax=*) or decoded as application/octet-stream."
    )


def has_file_meta(head: bytes) -> bool:
    """Whether stored bytes start with the Part 10 preamble and file meta (sent as they are then)."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def part10_bytes(data: bytes, *, target: str) -> bytes:
    """The instance as a Part 10 file (preamble and file meta always present) in ``target``."""
    dataset = read_dataset(data)
    stored = UID(dataset.file_meta.TransferSyntaxUID)
    if target not in (AS_STORED, stored):
        _transcode(dataset, stored=stored, target=UID(target))
    # The file meta names the instance it carries, whatever the sender wrote there.
    for meta, keyword in (("MediaStorageSOPClassUID", "SOPClassUID"), ("MediaStorageSOPInstanceUID", "SOPInstanceUID")):
        if keyword in dataset:
            setattr(dataset.file_meta, meta, dataset[keyword].value)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _transcode(dataset: Dataset, *, stored: UID, target: UID) -> None:
    has_pixels = "PixelData" in dataset
    if stored.is_compressed and has_pixels:
        # The instance stays the same instance: a change of transfer syntax keeps its UID (PS3.5 10).
        dataset.decompress(generate_instance_uid=False)  # to Explicit VR Little Endian
    elif stored == ExplicitVRBigEndian:
        _to_little_endian(dataset)
    if target.is_compressed:
        dataset.compress(target, generate_instance_uid=False)
    else:
        dataset.file_meta.TransferSyntaxUID = target


def _to_little_endian(dataset: Dataset) -> None:
    # pydicom re-encodes every value but the pixel data, whose byte order is the writer's to swap.
    if "PixelData" in dataset:
        array = dataset.pixel_array
        if array.dtype.itemsize > 1:
            array = array.astype(array.dtype.newbyteorder("<"))
        dataset.PixelData = np.ascontiguousarray(array).tobytes()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.set_original_encoding(False, True)
