"""Reading a DICOM instance and checking it completely before anything is stored.

A small instance is read from its bytes; a large one from its file, by its header only
(``dicom_parse_file``): its pixel data is never read into memory to take it in.
"""

import dataclasses
import datetime
import hashlib
import io
import struct
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from pydicom import Dataset, dcmread
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset as read_elements
from pydicom.filereader import read_partial
from pydicom.multival import MultiValue
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from imaging.models import BodyPart, Modality
from imaging.validation import ImageRejected, pixel_limit_check
from patients.models import Sex

_UNDEFINED_LENGTH = 0xFFFFFFFF
# The elements an instance's pixels may be in: Pixel Data, Float Pixel Data, Double Float Pixel Data.
# Elements after the pixel data larger than this are not read, only checked to be in the file.
_TRAILER_DEFER_BYTES = 64 * 1024
_PIXEL_TAGS = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData"}

# DICOM Body Part Examined (0018,0015) defined terms -> our body parts. Anything else is OTHER.
BODY_PARTS: dict[str, str] = {
    "CHEST": BodyPart.CHEST,
    "THORAX": BodyPart.CHEST,
    "LUNG": BodyPart.CHEST,
    "CHESTABDOMEN": BodyPart.CHEST,
    "BRAIN": BodyPart.BRAIN,
    "HEAD": BodyPart.HEAD,
    "SKULL": BodyPart.HEAD,
    "HEADNECK": BodyPart.HEAD,
    "FACE": BodyPart.HEAD,
    "BREAST": BodyPart.BREAST,
    "SKIN": BodyPart.SKIN,
    "EYE": BodyPart.EYE,
    "RETINA": BodyPart.EYE,
    "ABDOMEN": BodyPart.ABDOMEN,
    "ABDOMENPELVIS": BodyPart.ABDOMEN,
    "SPINE": BodyPart.SPINE,
    "CSPINE": BodyPart.SPINE,
    "TSPINE": BodyPart.SPINE,
    "LSPINE": BodyPart.SPINE,
    "SSPINE": BodyPart.SPINE,
    "COCCYX": BodyPart.SPINE,
    "EXTREMITY": BodyPart.EXTREMITY,
    "UPREXM": BodyPart.EXTREMITY,
    "LOWEREXM": BodyPart.EXTREMITY,
    "ARM": BodyPart.EXTREMITY,
    "LEG": BodyPart.EXTREMITY,
    "HAND": BodyPart.EXTREMITY,
    "FOOT": BodyPart.EXTREMITY,
    "FINGER": BodyPart.EXTREMITY,
    "TOE": BodyPart.EXTREMITY,
    "WRIST": BodyPart.EXTREMITY,
    "ANKLE": BodyPart.EXTREMITY,
    "ELBOW": BodyPart.EXTREMITY,
    "KNEE": BodyPart.EXTREMITY,
    "SHOULDER": BodyPart.EXTREMITY,
    "HIP": BodyPart.EXTREMITY,
    "FOREARM": BodyPart.EXTREMITY,
    "HUMERUS": BodyPart.EXTREMITY,
    "FEMUR": BodyPart.EXTREMITY,
    "TIBIA": BodyPart.EXTREMITY,
    "FIBULA": BodyPart.EXTREMITY,
    "CLAVICLE": BodyPart.EXTREMITY,
}


@dataclass(frozen=True)
class DicomInstance:
    """What ingestion needs from one instance, read and checked from its tags."""

    dataset: Dataset
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    patient_id: str
    patient_family_name: str
    patient_given_name: str
    patient_birth_date: datetime.date | None
    patient_sex: str
    modality: str
    modality_code: str
    body_part: str
    accession_number: str
    study_date: datetime.date | None
    study_time: datetime.time | None
    study_id: str
    study_description: str
    referring_physician: str
    rows: int
    columns: int
    number_of_frames: int
    # Read by its header only (``dicom_parse_file``): ``dataset`` stops before the pixel data, whose
    # declared length (``_UNDEFINED_LENGTH`` when encapsulated) is ``pixel_data_length``.
    header_only: bool = False
    pixel_data_length: int = 0

    @property
    def transfer_syntax(self) -> UID:
        return UID(self.transfer_syntax_uid)

    @property
    def is_image(self) -> bool:
        """False for an instance without pixel data (SR, KO, PR, waveform, encapsulated document): 0 rows."""
        return self.rows > 0


def looks_like_dicom(data: bytes) -> bool:
    """Whether ``data`` is DICOM: a Part 10 file, or a bare data set without the 128-byte preamble."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return True
    if data[:4] == b"DICM":
        return True
    # Without a preamble the stream starts with a group 0002 (file meta) or 0008 element, little endian.
    return len(data) >= 8 and int.from_bytes(data[:2], "little") in (0x0002, 0x0008)


def read_dataset(data: bytes) -> Dataset:
    """Parse stored bytes into a data set whose file meta names its transfer syntax."""
    if data[:4] == b"DICM":
        data = b"\0" * 128 + data
    dataset = dcmread(io.BytesIO(data), force=True)
    _ensure_transfer_syntax(dataset)
    return dataset


def _ensure_transfer_syntax(dataset: Dataset) -> None:
    # A data set without file meta (no preamble, ACR-NEMA style) is read by sniffing its encoding;
    # the pixel decoders need that encoding spelled out as a transfer syntax.
    meta = dataset.file_meta
    if meta.get("TransferSyntaxUID"):
        return
    implicit, little = dataset.original_encoding
    if implicit:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _truncation(dataset: Dataset, caught: list[warnings.WarningMessage]) -> str | None:
    for warning in caught:
        text = str(warning.message)
        if "End of file reached" in text or "bytes" in text and "expected" in text.lower():
            return text
    for element in dataset._dict.values():
        if (
            isinstance(element, RawDataElement)
            and element.value is not None
            and element.length != _UNDEFINED_LENGTH
            and len(element.value) < element.length
        ):
            return f"element {element.tag} should have {element.length} bytes but has {len(element.value)}"
    return None


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()


def _date(value) -> datetime.date | None:
    text = str(value or "").strip()
    if len(text) < 8:
        return None
    try:
        return datetime.date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


# The MRN MedPortal gives the patient of a study whose instances carry no PatientID (PS3.3: type 2,
# may be empty). One such patient per study: two studies without an ID are never assumed to be one person.
NO_PATIENT_ID_PREFIX = "NOID-"


def patient_key_without_id(study_instance_uid: str) -> str:
    return NO_PATIENT_ID_PREFIX + hashlib.sha256(study_instance_uid.encode()).hexdigest()[:16].upper()


def dicom_patient_id(mrn: str) -> str:
    """The PatientID DICOM answers for a patient: empty for one filed without a PatientID."""
    return "" if mrn.startswith(NO_PATIENT_ID_PREFIX) else mrn


def dicom_time(value) -> datetime.time | None:
    """A TM value (HH, HHMM, HHMMSS or HHMMSS.FFFFFF; colons of old files allowed), or None."""
    text = str(value or "").strip().replace(":", "")
    whole, _, fraction = text.partition(".")
    if not whole.isdigit() or len(whole) not in (2, 4, 6):
        return None
    try:
        hour, minute, second = int(whole[0:2]), int(whole[2:4] or 0), int(whole[4:6] or 0)
        micro = int((fraction + "000000")[:6]) if fraction.isdigit() else 0
        return datetime.time(hour, minute, min(second, 59), micro)
    except ValueError:
        return None


def map_modality(code: str) -> str:
    code = code.strip().upper()
    return code if code in Modality.values else Modality.OT


def map_body_part(dataset: Dataset) -> str:
    """Body Part Examined first; without it, an exact body-part word in the study or series description.

    Modalities often leave the tag empty and say "CHEST PA" in a description; an unknown
    body part still files the study (as OTHER) rather than losing it.
    """
    tag = _text(dataset, "BodyPartExamined").upper().replace(" ", "").replace("_", "")
    if tag:
        return BODY_PARTS.get(tag, BodyPart.OTHER)
    for keyword in ("StudyDescription", "SeriesDescription", "ProtocolName"):
        for word in _text(dataset, keyword).upper().replace("_", " ").replace("/", " ").split():
            if word in BODY_PARTS:
                return BODY_PARTS[word]
    return BodyPart.OTHER


def _require_uid(dataset: Dataset, keyword: str, value: str | None = None) -> str:
    value = (value if value is not None else _text(dataset, keyword)).strip("\0 ")
    if not value:
        raise ImageRejected(f"The DICOM file has no {keyword}; it cannot be filed.")
    if len(value) > 64 or not UID(value).is_valid:
        raise ImageRejected(f"The DICOM file's {keyword} '{value[:80]}' is not a valid UID.")
    return value


def dicom_parse(data: bytes) -> DicomInstance:
    """Read and check one DICOM instance. Raises ImageRejected with the reason for the user."""
    if not data:
        raise ImageRejected("The file is empty.")
    limit = settings.MEDPORTAL_MAX_DICOM_BYTES
    if len(data) > limit:
        raise ImageRejected(f"The file is {len(data):,} bytes; the limit is {limit:,} bytes.")
    if not looks_like_dicom(data):
        raise ImageRejected("The file is not a DICOM file.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = read_dataset(data)
        except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, OSError, struct.error) as exc:
            raise ImageRejected(f"The DICOM file is malformed or truncated and cannot be read ({exc}).") from exc
    reason = _truncation(dataset, caught)
    if reason:
        raise ImageRejected(f"The DICOM file is truncated or corrupt ({reason}); nothing was stored.")

    try:
        return _instance(dataset)
    except ImageRejected:
        raise
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise ImageRejected(f"The DICOM file has invalid values and cannot be read ({exc}).") from exc


def dicom_parse_file(fileobj: BinaryIO, *, size: int) -> DicomInstance:
    """Read and check one DICOM instance from its file, up to its pixel data. Raises ImageRejected.

    The same checks as ``dicom_parse`` but for the decoding of the pixels: the pixel data element
    is found and its length checked against the file, never read. Memory stays that of the header
    whatever the size of the file.
    """
    if not size:
        raise ImageRejected("The file is empty.")
    limit = settings.MEDPORTAL_MAX_DICOM_BYTES
    if size > limit:
        raise ImageRejected(f"The file is {size:,} bytes; the limit is {limit:,} bytes.")
    pixels: list[tuple[str, str | None, int]] = []

    def at_pixel_data(tag, vr, length) -> bool:
        keyword = _PIXEL_TAGS.get(int(tag))
        if keyword:
            pixels.append((keyword, vr, length))
        return keyword is not None

    fileobj.seek(0)
    if fileobj.read(4) == b"DICM":  # file meta without its preamble, as ``read_dataset`` also takes
        fileobj, size = _WithPreamble(fileobj), size + 128
    fileobj.seek(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = read_partial(fileobj, stop_when=at_pixel_data, force=True)
            _ensure_transfer_syntax(dataset)
        except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, OSError, struct.error) as exc:
            raise ImageRejected(f"The DICOM file is malformed or truncated and cannot be read ({exc}).") from exc
        # Where the pixel data element starts (pydicom stops there), when the file has one.
        start = fileobj.tell()
    reason = _truncation(dataset, caught)
    if not reason and pixels:
        reason = _after_pixel_data(fileobj, dataset, start=start, vr=pixels[0][1], length=pixels[0][2], size=size)
    if reason:
        raise ImageRejected(f"The DICOM file is truncated or corrupt ({reason}); nothing was stored.")
    keyword, length = (pixels[0][0], pixels[0][2]) if pixels else ("", 0)
    try:
        instance = _instance(dataset, pixels=keyword)
    except ImageRejected:
        raise
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise ImageRejected(f"The DICOM file has invalid values and cannot be read ({exc}).") from exc
    return dataclasses.replace(instance, header_only=True, pixel_data_length=length)


class _WithPreamble:
    """A file that starts at "DICM", read as if the 128-byte preamble it lacks were there."""

    def __init__(self, fileobj: BinaryIO):
        self.fileobj, self.position = fileobj, 0

    def read(self, n: int = -1) -> bytes:
        padding = b"\0" * max(0, min(128 - self.position, n if n >= 0 else 128))
        self.position += len(padding)
        if n >= 0:
            n -= len(padding)
            if n == 0:
                return padding
        self.fileobj.seek(self.position - 128)
        data = self.fileobj.read(n)
        self.position += len(data)
        return padding + data

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 1:
            offset += self.position
        elif whence == 2:
            offset += self.fileobj.seek(0, 2) + 128
        self.position = offset
        return offset

    def tell(self) -> int:
        return self.position


def _after_pixel_data(fileobj: BinaryIO, dataset: Dataset, *, start: int, vr: str | None, length: int, size: int):
    """Why the file is truncated or corrupt from its pixel data element on, or None.

    The pixel data is skipped, never read: its length (or, encapsulated, each fragment's length)
    must fit in the file; the elements after it (trailing padding) are read as the whole read
    would, a large one deferred.
    """
    implicit, little = dataset.original_encoding
    order = "little" if little else "big"
    end = start + (12 if not implicit and vr in EXPLICIT_VR_LENGTH_32 else 8)
    if length != _UNDEFINED_LENGTH:
        end += length
    else:
        # Encapsulated: an item per fragment, closed by a sequence delimiter.
        while True:
            fileobj.seek(end)
            item = fileobj.read(8)
            if len(item) < 8:
                return "the encapsulated pixel data ends before its sequence delimiter"
            tag = int.from_bytes(item[:2], order) << 16 | int.from_bytes(item[2:4], order)
            end += 8
            if tag == 0xFFFEE0DD:
                break
            if tag != 0xFFFEE000:
                return f"the encapsulated pixel data has an element ({tag:08X}) where an item should be"
            end += int.from_bytes(item[4:], order)
    if end > size:
        return f"the pixel data should end at byte {end:,} but the file has {size:,}"
    fileobj.seek(end)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            trailer = read_elements(fileobj, implicit, little, defer_size=_TRAILER_DEFER_BYTES)
        except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, OSError, struct.error) as exc:
            return f"after the pixel data: {exc}"
    for element in trailer._dict.values():
        if isinstance(element, RawDataElement) and element.value is None and element.value_tell + element.length > size:
            return f"element {element.tag} should have {element.length} bytes but the file ends first"
    return _truncation(trailer, caught)


def _instance(dataset: Dataset, *, pixels: str | None = None) -> DicomInstance:
    """``pixels`` names the pixel data element when ``dataset`` was read up to it (else it is looked up)."""
    meta = dataset.file_meta
    if pixels is None:
        pixels = next((keyword for keyword in _PIXEL_TAGS.values() if keyword in dataset), "")
    has_pixels = pixels == "PixelData"
    if not has_pixels:
        if pixels in ("FloatPixelData", "DoubleFloatPixelData"):
            raise ImageRejected("Floating-point DICOM pixel data is not supported.")
        sop_class = UID(_text(dataset, "SOPClassUID") or _text(meta, "MediaStorageSOPClassUID"))
        if not sop_class.name or "Image" in sop_class.name:
            # An image instance whose pixel data is missing: the file stops before its end.
            raise ImageRejected("The DICOM file ends before its pixel data: it is truncated. Nothing was stored.")
        if sop_class.name != sop_class and "Storage" not in sop_class.name:
            raise ImageRejected(f"The DICOM instance is not of a storage SOP class: it is a {sop_class.name}.")
        # Any other storage SOP class (SR, KO, PR, waveforms, encapsulated documents, private ones)
        # is stored as sent, to be searched and retrieved; there is nothing in it for the AI to read.
    sop_instance_uid = _require_uid(
        dataset, "SOPInstanceUID", _text(dataset, "SOPInstanceUID") or _text(meta, "MediaStorageSOPInstanceUID")
    )
    sop_class_uid = _require_uid(
        dataset, "SOPClassUID", _text(dataset, "SOPClassUID") or _text(meta, "MediaStorageSOPClassUID")
    )
    study_instance_uid = _require_uid(dataset, "StudyInstanceUID")
    series_instance_uid = _text(dataset, "SeriesInstanceUID")
    # PatientID is type 2: it may be empty. Such a study is filed under a patient of its own.
    patient_id = _text(dataset, "PatientID") or patient_key_without_id(study_instance_uid)
    if len(patient_id) > 64:
        raise ImageRejected("The DICOM file's PatientID is longer than 64 characters.")
    rows, columns, frames = 0, 0, 0
    if has_pixels:
        rows, columns = int(dataset.get("Rows") or 0), int(dataset.get("Columns") or 0)
        if rows < 1 or columns < 1:
            raise ImageRejected("The DICOM image has no pixels (Rows or Columns is zero).")
        frames = int(dataset.get("NumberOfFrames") or 1)
        if frames < 1:
            raise ImageRejected("The DICOM image says it has no frames.")
        pixel_limit_check(
            width=columns,
            height=rows,
            samples=int(dataset.get("SamplesPerPixel") or 1),
            frames=frames,
            bytes_per_sample=-(-int(dataset.get("BitsAllocated") or 8) // 8),
        )
    name = dataset.get("PatientName")
    family = str(getattr(name, "family_name", "") or "").strip()
    given = " ".join(
        part
        for part in (str(getattr(name, "given_name", "") or ""), str(getattr(name, "middle_name", "") or ""))
        if part
    ).strip()
    sex = _text(dataset, "PatientSex").upper()
    code = _text(dataset, "Modality")
    return DicomInstance(
        dataset=dataset,
        sop_instance_uid=sop_instance_uid,
        sop_class_uid=sop_class_uid,
        study_instance_uid=study_instance_uid,
        series_instance_uid=series_instance_uid[:64],
        transfer_syntax_uid=str(meta.TransferSyntaxUID),
        patient_id=patient_id,
        patient_family_name=(family or str(name or "").strip())[:120],
        patient_given_name=given[:120],
        patient_birth_date=_date(dataset.get("PatientBirthDate")),
        patient_sex=sex if sex in Sex.values else Sex.UNKNOWN,
        modality=map_modality(code),
        modality_code=code,
        body_part=map_body_part(dataset),
        accession_number=_text(dataset, "AccessionNumber")[:64],
        study_date=_date(dataset.get("StudyDate")),
        study_time=dicom_time(dataset.get("StudyTime")),
        study_id=_text(dataset, "StudyID")[:16],
        study_description=_text(dataset, "StudyDescription")[:255],
        referring_physician=str(dataset.get("ReferringPhysicianName") or "").replace("^", " ").strip()[:120],
        rows=rows,
        columns=columns,
        number_of_frames=frames,
    )
