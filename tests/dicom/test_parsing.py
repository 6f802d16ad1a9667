import io
from dataclasses import replace

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import generate_uid

from imaging.dicom.parsing import (
    dicom_parse,
    dicom_parse_file,
    dicom_patient_id,
    looks_like_dicom,
    map_body_part,
    patient_key_without_id,
)
from imaging.models import BodyPart, Modality
from imaging.validation import ImageRejected
from tests.dicom.support import shipped_bytes, shipped_path


def test_ct_tags_are_read():
    instance = dicom_parse(shipped_bytes("CT_small.dcm"))
    dataset = pydicom.dcmread(shipped_path("CT_small.dcm"))
    assert instance.patient_id == dataset.PatientID
    assert instance.patient_family_name == dataset.PatientName.family_name
    assert instance.study_instance_uid == dataset.StudyInstanceUID
    assert instance.sop_instance_uid == dataset.SOPInstanceUID
    assert instance.modality == Modality.CT
    assert instance.body_part == BodyPart.OTHER  # CT_small has no Body Part Examined
    assert instance.study_date.strftime("%Y%m%d") == dataset.StudyDate
    assert (instance.rows, instance.columns) == (dataset.Rows, dataset.Columns)


def test_file_without_preamble_is_read():
    data = shipped_bytes("CT_small.dcm")
    assert data[128:132] == b"DICM"
    bare = data[132:]  # file meta straight away, no 128-byte preamble nor DICM prefix
    assert looks_like_dicom(bare)
    assert dicom_parse(bare).sop_instance_uid == dicom_parse(data).sop_instance_uid


def test_data_set_without_preamble_or_file_meta_is_read():
    dataset = pydicom.dcmread(shipped_path("MR_small_implicit.dcm"))
    dataset.preamble = None
    dataset.file_meta = FileMetaDataset()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, implicit_vr=True, little_endian=True, enforce_file_format=False)
    raw = buffer.getvalue()
    assert raw[:2] == b"\x08\x00" and b"DICM" not in raw[:200]  # a bare data set, as old systems write
    instance = dicom_parse(raw)
    assert instance.patient_id == dataset.PatientID
    assert instance.transfer_syntax_uid == "1.2.840.10008.1.2"


@pytest.mark.parametrize("cut", [200, 2_000, 20_000, -100])
def test_truncated_file_is_rejected(cut):
    data = shipped_bytes("CT_small.dcm")
    with pytest.raises(ImageRejected, match="truncated"):
        dicom_parse(data[:cut])


def test_shipped_truncated_file_is_rejected():
    with pytest.raises(ImageRejected, match="truncated"):
        dicom_parse(shipped_bytes("MR_truncated.dcm"))


def test_png_is_not_dicom(sample_image_bytes):
    data = sample_image_bytes("cxr-normal-1.png")
    assert not looks_like_dicom(data)
    with pytest.raises(ImageRejected, match="not a DICOM"):
        dicom_parse(data)


def test_instance_without_pixels_is_read_as_not_an_image():
    instance = dicom_parse(shipped_bytes("rtplan.dcm"))
    assert not instance.is_image
    assert (instance.rows, instance.columns, instance.number_of_frames) == (0, 0, 0)
    assert instance.modality_code == "RTPLAN"


def test_instance_of_no_storage_sop_class_is_rejected():
    dataset = pydicom.dcmread(shipped_path("rtplan.dcm"))
    dataset.SOPClassUID = "1.2.840.10008.1.1"  # Verification
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    with pytest.raises(ImageRejected, match="not of a storage SOP class"):
        dicom_parse(buffer.getvalue())


def test_an_empty_patient_id_files_the_study_under_a_patient_of_its_own():
    dataset = pydicom.dcmread(shipped_path("CT_small.dcm"))
    dataset.PatientID = ""
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    instance = dicom_parse(buffer.getvalue())
    assert instance.patient_id == patient_key_without_id(dataset.StudyInstanceUID)
    assert instance.patient_id.startswith("NOID-") and dicom_patient_id(instance.patient_id) == ""
    # Another study without a PatientID is another patient, even with the same name.
    dataset.StudyInstanceUID = generate_uid()
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    assert dicom_parse(buffer.getvalue()).patient_id != instance.patient_id


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"BodyPartExamined": "CHEST"}, BodyPart.CHEST),
        ({"BodyPartExamined": "CSPINE"}, BodyPart.SPINE),
        ({"BodyPartExamined": "KNEE"}, BodyPart.EXTREMITY),
        ({"BodyPartExamined": "PELVIS"}, BodyPart.OTHER),
        ({"StudyDescription": "XR CHEST PA"}, BodyPart.CHEST),
        ({"StudyDescription": "Routine"}, BodyPart.OTHER),
    ],
)
def test_body_part_mapping(tags, expected):
    dataset = pydicom.Dataset()
    for keyword, value in tags.items():
        setattr(dataset, keyword, value)
    assert map_body_part(dataset) == expected


def test_unknown_modality_maps_to_other():
    data = shipped_bytes("JPEG2000.dcm")  # an NM image in a Secondary Capture
    instance = dicom_parse(data)
    assert instance.modality_code == "NM"
    assert instance.modality == Modality.OT


def test_invalid_uid_is_rejected():
    dataset = pydicom.dcmread(shipped_path("CT_small.dcm"))
    dataset.StudyInstanceUID = "not-a-uid"
    dataset.SOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    with pytest.raises(ImageRejected, match="StudyInstanceUID"):
        dicom_parse(buffer.getvalue())


def _retagged(name: str, **tags) -> bytes:
    dataset = pydicom.dcmread(shipped_path(name))
    for keyword, value in tags.items():
        setattr(dataset, keyword, value)
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


def _bare(name: str) -> bytes:
    dataset = pydicom.dcmread(shipped_path(name))
    dataset.preamble = None
    dataset.file_meta = FileMetaDataset()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, implicit_vr=True, little_endian=True, enforce_file_format=False)
    return buffer.getvalue()


HEADER_CASES = {
    "whole": lambda: shipped_bytes("CT_small.dcm"),
    "cut in the header": lambda: shipped_bytes("CT_small.dcm")[:2_000],
    "cut in the pixels": lambda: shipped_bytes("CT_small.dcm")[:20_000],
    "cut 100 bytes short": lambda: shipped_bytes("CT_small.dcm")[:-100],
    "shipped truncated": lambda: shipped_bytes("MR_truncated.dcm"),
    "not an image": lambda: shipped_bytes("rtplan.dcm"),
    "no storage class": lambda: _retagged("rtplan.dcm", SOPClassUID="1.2.840.10008.1.1"),
    "invalid UID": lambda: _retagged("CT_small.dcm", StudyInstanceUID="not-a-uid"),
    "compressed": lambda: shipped_bytes("JPEG2000.dcm"),
    "compressed, cut in a fragment": lambda: shipped_bytes("JPEG2000.dcm")[:-500],
    "no preamble": lambda: shipped_bytes("CT_small.dcm")[128:],
    "no preamble, cut": lambda: shipped_bytes("CT_small.dcm")[128:-3_000],
    "bare data set": lambda: _bare("MR_small_implicit.dcm"),
    "bare data set, cut": lambda: _bare("MR_small_implicit.dcm")[:-10],
}


@pytest.mark.parametrize("case", HEADER_CASES)
def test_reading_by_the_header_from_a_file_gives_the_verdict_of_reading_the_bytes(case):
    """What a large instance is read with (its file, up to its pixel data) agrees with the whole read."""
    data = HEADER_CASES[case]()
    try:
        expected = dicom_parse(data)
    except ImageRejected as exc:
        expected = exc
    try:
        got = dicom_parse_file(io.BytesIO(data), size=len(data))
    except ImageRejected as exc:
        got = exc
    if isinstance(expected, ImageRejected):
        assert isinstance(got, ImageRejected), f"accepted what reading the bytes refuses: {expected}"
        return
    assert not isinstance(got, ImageRejected), got
    assert got.header_only and "PixelData" not in got.dataset  # the pixels were not read
    assert replace(got, dataset=None, header_only=False, pixel_data_length=0) == replace(expected, dataset=None)
    assert got.pixel_data_length == (len(expected.dataset.PixelData) if expected.is_image else 0) or (
        got.pixel_data_length == 0xFFFFFFFF and expected.transfer_syntax.is_encapsulated
    )
