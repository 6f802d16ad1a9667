import io

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import generate_uid

from imaging.dicom.parsing import (
    dicom_parse,
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
