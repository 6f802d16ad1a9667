"""DICOM test files: the real ones pydicom ships in its wheel, and instances built from them.

Every file used here is in the installed pydicom wheel (``pydicom.data.get_testdata_file`` with
download=False), so nothing is fetched at run time and none is copied into the repository. Their
origins and licences are in pydicom/data/test_files/README.txt of the wheel (NEMA WG04, GDCM's BSD
licence, pcir.org freely available sets). The chest radiograph is built from samples/.
"""

import io
import socket
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image as PILImage
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def shipped_path(name: str) -> str:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is not in the installed pydicom wheel"
    return path


def shipped_bytes(name: str) -> bytes:
    with open(shipped_path(name), "rb") as handle:
        return handle.read()


def dataset_bytes(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def retagged(name: str, **tags) -> bytes:
    """A shipped test file with some tags changed (new UIDs by default, so it is a new instance)."""
    dataset = pydicom.dcmread(shipped_path(name))
    dataset.SOPInstanceUID = tags.pop("SOPInstanceUID", generate_uid())
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    for keyword, value in tags.items():
        setattr(dataset, keyword, value)
    return dataset_bytes(dataset)


def chest_radiograph_dataset(
    *,
    patient_id: str = "CXR-0001",
    patient_name: str = "Lovelace^Ada",
    birth_date: str = "19601210",
    study_uid: str | None = None,
    sample: str = "cxr-pneumonia-1.png",
    patient=None,
) -> FileDataset:
    """A CR chest radiograph: a real chest X-ray from samples/, 12-bit MONOCHROME1 with a VOI window.

    With ``patient`` (a Patient on record) it carries that patient's ID, name and birth date.
    """
    if patient is not None:
        patient_id = patient.mrn
        patient_name = f"{patient.family_name}^{patient.given_name}"
        birth_date = patient.birth_date.strftime("%Y%m%d") if patient.birth_date else ""
    pixels = np.asarray(PILImage.open(SAMPLES / sample).convert("L"), dtype=np.uint16)
    stored = (4095 - pixels * 16).astype(np.uint16)  # MONOCHROME1: high values are dark
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = CR_IMAGE_STORAGE
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.PatientID = patient_id
    dataset.PatientName = patient_name
    dataset.PatientBirthDate = birth_date
    dataset.PatientSex = "F"
    dataset.StudyInstanceUID = study_uid or generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.StudyDate = "20250301"
    dataset.StudyTime = "101500"
    dataset.AccessionNumber = f"A{patient_id[-4:]}{dataset.SOPInstanceUID[-6:]}"
    dataset.StudyDescription = "XR CHEST PA"
    dataset.ReferringPhysicianName = "House^Gregory"
    dataset.Modality = "CR"
    dataset.BodyPartExamined = "CHEST"
    dataset.SeriesNumber = 1
    dataset.InstanceNumber = 1
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME1"
    dataset.Rows, dataset.Columns = stored.shape
    dataset.BitsAllocated = 16
    dataset.BitsStored = 12
    dataset.HighBit = 11
    dataset.PixelRepresentation = 0
    dataset.WindowCenter = 2048
    dataset.WindowWidth = 4096
    dataset.PixelData = stored.tobytes()
    return dataset


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
