"""Synthetic DICOM studies with real structure: a CT and an MR series of several slices, a multi-frame
ultrasound cine and a Structured Report, each a proper IOD of its SOP class with fresh UIDs.

The pixels are shapes and gradients that differ from slice to slice and frame to frame, so a
viewer that shows them has drawn something, and the wrong frame would look different.
"""

import io

import numpy as np
from PIL import Image as PILImage
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    generate_uid,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
US_MULTIFRAME_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"
BASIC_TEXT_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.11"


def _base(*, sop_class: str, syntax: str, patient: dict, study: dict, series_uid: str, modality: str) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    dataset = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    dataset.SpecificCharacterSet = "ISO_IR 192"
    dataset.SOPClassUID = sop_class
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.PatientID = patient["id"]
    dataset.PatientName = patient["name"]
    dataset.PatientBirthDate = "19700101"
    dataset.PatientSex = "O"
    dataset.StudyInstanceUID = study["uid"]
    dataset.StudyDate = "20250301"
    dataset.StudyTime = "101500"
    dataset.StudyID = "1"
    dataset.AccessionNumber = study["accession"]
    dataset.StudyDescription = study["description"]
    dataset.ReferringPhysicianName = ""
    dataset.SeriesInstanceUID = series_uid
    dataset.Modality = modality
    dataset.Manufacturer = "MedPortal test"
    return dataset


def new_study(*, accession: str = "", description: str) -> dict:
    """The study attributes the instances of one study share; pass it to several series to file them together."""
    return {"uid": generate_uid(), "accession": accession or f"T{generate_uid()[-10:]}", "description": description}


def _phantom(size: int, slice_index: int, slices: int) -> np.ndarray:
    """A head-like phantom: an ellipse whose inner disc grows through the volume, over a gradient."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = (size - 1) / 2
    outer = ((x - centre) / (0.42 * size)) ** 2 + ((y - centre) / (0.36 * size)) ** 2 <= 1
    radius = 0.08 * size + 0.15 * size * slice_index / max(slices - 1, 1)
    inner = (x - centre * 1.1) ** 2 + (y - centre * 0.9) ** 2 <= radius**2
    image = np.full((size, size), -1000.0, dtype=np.float32)  # air
    image[outer] = 40 + 60 * (x[outer] / size)  # soft tissue with a gradient
    image[inner] = 700  # bone-like
    return image


def ct_series(*, patient: dict, study: dict | None = None, slices: int = 6, size: int = 128) -> list[bytes]:
    study = study or new_study(description="CT HEAD")
    series_uid = generate_uid()
    frame_of_reference = generate_uid()
    files = []
    for index in range(slices):
        dataset = _base(
            sop_class=CT_IMAGE_STORAGE,
            syntax=ExplicitVRLittleEndian,
            patient=patient,
            study=study,
            series_uid=series_uid,
            modality="CT",
        )
        dataset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        dataset.SeriesNumber = 1
        dataset.SeriesDescription = "Axial head"
        dataset.BodyPartExamined = "HEAD"
        dataset.InstanceNumber = index + 1
        dataset.FrameOfReferenceUID = frame_of_reference
        dataset.PositionReferenceIndicator = ""
        dataset.ImagePositionPatient = [-64.0, -64.0, float(index * 5)]
        dataset.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        dataset.SliceLocation = float(index * 5)
        dataset.SliceThickness = 5.0
        dataset.PixelSpacing = [1.0, 1.0]
        dataset.KVP = 120
        dataset.RescaleIntercept = -1024
        dataset.RescaleSlope = 1
        dataset.RescaleType = "HU"
        dataset.WindowCenter = 40
        dataset.WindowWidth = 400
        stored = (_phantom(size, index, slices) + 1024).astype(np.uint16)
        _monochrome(dataset, stored, bits_stored=12)
        dataset.PixelData = stored.tobytes()
        files.append(_bytes(dataset))
    return files


def mr_series(*, patient: dict, study: dict | None = None, slices: int = 5, size: int = 128) -> list[bytes]:
    """A T1 series, JPEG-LS lossless compressed (the viewer decodes it with its WebAssembly codec)."""
    study = study or new_study(description="MR BRAIN")
    series_uid = generate_uid()
    frame_of_reference = generate_uid()
    files = []
    for index in range(slices):
        dataset = _base(
            sop_class=MR_IMAGE_STORAGE,
            syntax=ExplicitVRLittleEndian,
            patient=patient,
            study=study,
            series_uid=series_uid,
            modality="MR",
        )
        dataset.ImageType = ["ORIGINAL", "PRIMARY", "M"]
        dataset.SeriesNumber = 1
        dataset.SeriesDescription = "T1 axial"
        dataset.BodyPartExamined = "BRAIN"
        dataset.InstanceNumber = index + 1
        dataset.FrameOfReferenceUID = frame_of_reference
        dataset.PositionReferenceIndicator = ""
        dataset.ImagePositionPatient = [-96.0, -96.0, float(index * 4)]
        dataset.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        dataset.SliceThickness = 4.0
        dataset.PixelSpacing = [1.5, 1.5]
        dataset.ScanningSequence = "SE"
        dataset.SequenceVariant = "NONE"
        dataset.ScanOptions = ""
        dataset.MRAcquisitionType = "2D"
        dataset.EchoTime = 15
        dataset.RepetitionTime = 500
        dataset.EchoTrainLength = 1
        dataset.MagneticFieldStrength = 1.5
        phantom = _phantom(size, slices - 1 - index, slices)
        stored = np.clip((phantom + 1000) / 2, 0, 4095).astype(np.uint16)
        _monochrome(dataset, stored, bits_stored=12)
        dataset.WindowCenter = 500
        dataset.WindowWidth = 1000
        dataset.compress(JPEGLSLossless, stored)
        files.append(_bytes(dataset))
    return files


def us_cine(*, patient: dict, study: dict | None = None, frames: int = 8, rows: int = 120, columns: int = 160) -> bytes:
    """A multi-frame ultrasound cine: colour frames, each JPEG baseline compressed, with a moving target."""
    study = study or new_study(description="US ABDOMEN")
    dataset = _base(
        sop_class=US_MULTIFRAME_STORAGE,
        syntax=JPEGBaseline8Bit,
        patient=patient,
        study=study,
        series_uid=generate_uid(),
        modality="US",
    )
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
    dataset.SeriesNumber = 1
    dataset.SeriesDescription = "Liver cine"
    dataset.InstanceNumber = 1
    dataset.SamplesPerPixel = 3
    dataset.PhotometricInterpretation = "YBR_FULL_422"
    dataset.PlanarConfiguration = 0
    dataset.Rows, dataset.Columns = rows, columns
    dataset.BitsAllocated = 8
    dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    dataset.NumberOfFrames = frames
    dataset.FrameTime = 40.0
    dataset.FrameIncrementPointer = 0x00181063  # Frame Time
    dataset.LossyImageCompression = "01"
    dataset.LossyImageCompressionRatio = 10
    dataset.LossyImageCompressionMethod = "ISO_10918_1"
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    encoded = []
    for index in range(frames):
        angle = np.arctan2(x - columns / 2, y + 10)
        sector = (np.abs(angle) < 0.7) & (np.hypot(x - columns / 2, y + 10) < rows * 1.05)
        grey = np.where(sector, 60 + 120 * (y / rows), 0)
        blob = np.hypot(x - (30 + index * 12), y - rows / 2) < 14
        grey[blob & sector] = 250
        rgb = np.stack([grey, grey, grey], axis=-1).astype(np.uint8)
        rgb[blob & sector] = (255, 60, 60)  # a red (colour Doppler-like) marker
        buffer = io.BytesIO()
        PILImage.fromarray(rgb, "RGB").save(buffer, format="JPEG", quality=92, subsampling=1)
        encoded.append(buffer.getvalue())
    dataset.PixelData = encapsulate(encoded)
    dataset["PixelData"].VR = "OB"
    return _bytes(dataset)


def basic_text_sr(*, patient: dict, study: dict | None = None) -> bytes:
    """A Basic Text SR: a report with one finding, in its own study or in ``study``."""
    study = study or new_study(description="REPORT")
    dataset = _base(
        sop_class=BASIC_TEXT_SR_STORAGE,
        syntax=ExplicitVRLittleEndian,
        patient=patient,
        study=study,
        series_uid=generate_uid(),
        modality="SR",
    )
    dataset.SeriesNumber = 99
    dataset.InstanceNumber = 1
    dataset.ContentDate = "20250301"
    dataset.ContentTime = "101600"
    dataset.ValueType = "CONTAINER"
    dataset.ContinuityOfContent = "SEPARATE"
    dataset.CompletionFlag = "COMPLETE"
    dataset.VerificationFlag = "UNVERIFIED"
    dataset.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic imaging report")])
    finding = Dataset()
    finding.RelationshipType = "CONTAINS"
    finding.ValueType = "TEXT"
    finding.ConceptNameCodeSequence = Sequence([_code("121071", "DCM", "Finding")])
    finding.TextValue = "No acute abnormality (synthetic test report)."
    dataset.ContentSequence = Sequence([finding])
    return _bytes(dataset)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue = value
    code.CodingSchemeDesignator = scheme
    code.CodeMeaning = meaning
    return code


def _monochrome(dataset: Dataset, stored: np.ndarray, *, bits_stored: int) -> None:
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.Rows, dataset.Columns = stored.shape
    dataset.BitsAllocated = 16
    dataset.BitsStored = bits_stored
    dataset.HighBit = bits_stored - 1
    dataset.PixelRepresentation = 0


def _bytes(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# Non-image storage SOP classes: none has PixelData. Each is a minimal instance of its class, enough to
# be filed, searched and retrieved (MedPortal never reads their content).
NON_IMAGE_CLASSES = {
    "comprehensive-sr": ("1.2.840.10008.5.1.4.1.1.88.33", "SR"),
    "enhanced-sr": ("1.2.840.10008.5.1.4.1.1.88.22", "SR"),
    "kos": ("1.2.840.10008.5.1.4.1.1.88.59", "KO"),
    "gsps": ("1.2.840.10008.5.1.4.1.1.11.1", "PR"),
    "ecg": ("1.2.840.10008.5.1.4.1.1.9.1.1", "ECG"),
    "pdf": ("1.2.840.10008.5.1.4.1.1.104.1", "DOC"),
    "rtstruct": ("1.2.840.10008.5.1.4.1.1.481.3", "RTSTRUCT"),
    "rtplan": ("1.2.840.10008.5.1.4.1.1.481.5", "RTPLAN"),
}


def non_image(kind: str, *, patient: dict, study: dict | None = None) -> bytes:
    """One instance of a non-image SOP class (``NON_IMAGE_CLASSES``), in its own series."""
    sop_class, modality = NON_IMAGE_CLASSES[kind]
    study = study or new_study(description=f"{kind.upper()} ONLY")
    dataset = _base(
        sop_class=sop_class,
        syntax=ExplicitVRLittleEndian,
        patient=patient,
        study=study,
        series_uid=generate_uid(),
        modality=modality,
    )
    dataset.SeriesNumber = 90
    dataset.InstanceNumber = 1
    dataset.ContentDate, dataset.ContentTime = "20250301", "101600"
    if kind == "ecg":
        channels, samples = 12, 500
        waveform = Dataset()
        waveform.WaveformOriginality = "ORIGINAL"
        waveform.NumberOfWaveformChannels = channels
        waveform.NumberOfWaveformSamples = samples
        waveform.SamplingFrequency = 500
        waveform.WaveformBitsAllocated = 16
        waveform.WaveformSampleInterpretation = "SS"
        waveform.WaveformData = (np.arange(channels * samples, dtype=np.int16) % 200).tobytes()
        dataset.WaveformSequence = Sequence([waveform])
    elif kind == "pdf":
        dataset.MIMETypeOfEncapsulatedDocument = "application/pdf"
        dataset.DocumentTitle = "Referral letter"
        dataset.EncapsulatedDocument = b"%PDF-1.4\n%synthetic\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    elif kind == "rtstruct":
        dataset.StructureSetLabel = "PLAN"
        roi = Dataset()
        roi.ROINumber, roi.ROIName = 1, "PTV"
        dataset.StructureSetROISequence = Sequence([roi])
    elif kind == "rtplan":
        dataset.RTPlanLabel = "PLAN 1"
        dataset.RTPlanGeometry = "PATIENT"
    elif kind == "gsps":
        dataset.ContentLabel = "MEASURE"
        dataset.PresentationCreationDate, dataset.PresentationCreationTime = "20250301", "101700"
    else:
        dataset.ValueType = "CONTAINER"
        dataset.ContinuityOfContent = "SEPARATE"
        dataset.ConceptNameCodeSequence = Sequence([_code("113000", "DCM", "Of Interest")])
        dataset.ContentSequence = Sequence([])
    return _bytes(dataset)


MULTIFRAME_WORD_SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7.3"


def large_multiframe(path, *, patient: dict, frames: int = 128, rows: int = 512, columns: int = 512) -> None:
    """Write a large multi-frame instance (uncompressed 16-bit frames, 512 kB each) to ``path``.

    Each frame is a gradient offset by its index, so frames differ and nothing compresses it away.
    """
    dataset = _base(
        sop_class=MULTIFRAME_WORD_SC_STORAGE,
        syntax=ExplicitVRLittleEndian,
        patient=patient,
        study=new_study(description="LARGE MULTIFRAME"),
        series_uid=generate_uid(),
        modality="OT",
    )
    dataset.SeriesNumber = 1
    dataset.InstanceNumber = 1
    dataset.NumberOfFrames = frames
    dataset.FrameIncrementPointer = 0x00280009  # Frame Increment Pointer: frames in sequence
    ramp = np.add.outer(np.arange(rows, dtype=np.uint16), np.arange(columns, dtype=np.uint16))
    _monochrome(dataset, ramp, bits_stored=16)
    dataset.PixelData = b"".join((ramp + index).tobytes() for index in range(frames))
    dataset.save_as(path, enforce_file_format=True)
