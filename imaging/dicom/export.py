"""Study export: the original files, or de-identified DICOM copies, as one ZIP streamed file by file.

The archive is written to a sink that the response drains after every file (and every chunk of
an original file), so a study of any size costs the memory of one instance, never of the ZIP.
"""

import io
import struct
import tempfile
import zipfile
from collections.abc import Iterator

from django.core.files.storage import default_storage

from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.dicom.deid import (
    DEIDENTIFICATION_METHOD,
    TABLE_EDITION,
    burned_in_text_risk,
    dataset_deidentify,
    pseudonym,
    pseudonymous_uid,
    uid_pseudonym,
)
from imaging.dicom.parsing import read_dataset
from imaging.models import Image, Study
from imaging.storage import blob_read

_CHUNK = 1024 * 1024


class _Sink(io.RawIOBase):
    """A write-only, unseekable file: zipfile then writes data descriptors and never seeks back."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def drain(self) -> Iterator[bytes]:
        chunks, self._chunks = self._chunks, []
        yield from chunks


# PNG chunks needed to show the image; the rest (tEXt, zTXt, iTXt, eXIf, tIME, iCCP ...) may carry
# names, dates or software and are dropped.
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEPT = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"pHYs"})
# JPEG: APP1-APP13 and APP15 (EXIF, XMP, IPTC, ...) and comments go; APP0 (JFIF) and APP14 (Adobe,
# which says how to convert the colours) stay.
_JPEG_DROPPED = frozenset({*range(0xE1, 0xEE), 0xEF, 0xFE})


def png_without_metadata(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    out = [_PNG_SIGNATURE]
    position = len(_PNG_SIGNATURE)
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        end = position + 12 + length
        if kind in _PNG_KEPT:
            out.append(data[position:end])
        position = end
        if kind == b"IEND":
            break
    return b"".join(out)


def jpeg_without_metadata(data: bytes) -> bytes:
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG file")
    out = [b"\xff\xd8"]
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise ValueError("corrupt JPEG marker")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            out.append(data[position : position + 2])
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        end = position + 2 + length
        if marker == 0xDA:  # start of scan: the entropy-coded data and everything after it stay
            out.append(data[position:])
            return b"".join(out)
        if marker not in _JPEG_DROPPED:
            out.append(data[position:end])
        position = end
    return b"".join(out)


def _image_without_metadata(image: Image) -> tuple[bytes, str]:
    data = blob_read(image.file.name)
    if image.content_type == "image/png":
        return png_without_metadata(data), ".png"
    return jpeg_without_metadata(data), ".jpg"


def _copy_original(archive: zipfile.ZipFile, sink: _Sink, *, name: str, image: Image) -> Iterator[bytes]:
    with default_storage.open(image.file.name, "rb") as source, archive.open(name, "w") as target:
        while chunk := source.read(_CHUNK):
            target.write(chunk)
            yield from sink.drain()


def _images(study: Study) -> list[Image]:
    # Read before the first byte is sent: the response streams after the view's transaction ended.
    return list(
        study.images.order_by("uploaded_at", "id").only(
            "id", "study_id", "file", "content_type", "series_instance_uid", "sop_instance_uid", "uploaded_at"
        )
    )


def _original_export(images: list[Image]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for position, image in enumerate(images, start=1):
            if image.content_type == DICOM_CONTENT_TYPE:
                name = f"{image.series_instance_uid or 'series'}/{image.sop_instance_uid}.dcm"
                yield from _copy_original(archive, sink, name=name, image=image)
            else:
                data, extension = _image_without_metadata(image)
                archive.writestr(f"{position:04d}{extension}", data)
            yield from sink.drain()
    yield from sink.drain()


def _deidentified_export(images: list[Image], manifest_head: list[str]) -> Iterator[bytes]:
    sink = _Sink()
    exported = 0
    withheld: list[str] = []
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for position, image in enumerate(images, start=1):
            if image.content_type != DICOM_CONTENT_TYPE:
                kind = "PNG" if image.content_type == "image/png" else "JPEG"
                withheld.append(
                    f"image {position:04d} ({kind}, not DICOM): nothing says the pixels are free of burned-in text"
                )
                continue
            dataset = read_dataset(blob_read(image.file.name))
            risk = burned_in_text_risk(dataset)
            if risk:
                modality = str(dataset.get("Modality") or "?")
                uid = uid_pseudonym(image.sop_instance_uid or str(dataset.get("SOPInstanceUID", "")))
                withheld.append(f"image {position:04d} ({modality}, instance {uid}): {risk}")
                continue
            dataset_deidentify(dataset)
            name = f"{dataset.get('SeriesInstanceUID', 'series')}/{dataset.SOPInstanceUID}.dcm"
            with tempfile.TemporaryFile() as encoded, archive.open(name, "w") as target:
                # pydicom seeks while writing, so it cannot write into the ZIP entry itself; a
                # temporary file spares holding a second copy of the instance in memory.
                dataset.save_as(encoded, enforce_file_format=True)
                del dataset
                encoded.seek(0)
                while chunk := encoded.read(_CHUNK):
                    target.write(chunk)
                    yield from sink.drain()
            exported += 1
            yield from sink.drain()
        lines = [
            *manifest_head,
            f"Instances exported: {exported}",
            f"Images withheld for review (possible burned-in text): {len(withheld)}",
            *(f"- {line}" for line in withheld),
        ]
        archive.writestr("MANIFEST.txt", "\n".join(lines) + "\n")
    yield from sink.drain()


def _manifest_head(study: Study) -> list[str]:
    # Names only pseudonyms and positions: no file name, MRN, accession number or original UID.
    lines = [
        "De-identified export of one study.",
        f"Patient: {pseudonym(study.patient.mrn)}",
    ]
    if study.study_instance_uid:
        lines.append(f"Study Instance UID: {uid_pseudonym(study.study_instance_uid)}")
    return [
        *lines,
        f"Profile: {DEIDENTIFICATION_METHOD} (table E.1-1, {TABLE_EDITION}); private tags, curve and overlay",
        "groups removed; dates and times removed or replaced; UIDs replaced by keyed pseudonyms.",
    ]


def study_export_stream(*, study: Study, anonymised: bool) -> Iterator[bytes]:
    """The ZIP of the study's images, chunk by chunk. Anonymised: de-identified DICOM and a manifest."""
    images = _images(study)
    if anonymised:
        # The key is checked (and the manifest's head built) before the first byte goes out.
        return _deidentified_export(images, _manifest_head(study))
    return _original_export(images)


def study_export_filename(study: Study, *, anonymised: bool) -> str:
    if anonymised:
        return f"study-{pseudonym(study.patient.mrn).lower()}-{pseudonymous_uid(str(study.id))[-8:]}-anonymised.zip"
    return f"study-{study.accession_number}.zip"
