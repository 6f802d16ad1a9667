"""AI second opinions back as DICOM Comprehensive SR, filed by viewers under the original patient and study."""

import io
import uuid

from django.utils import timezone
from pydicom import Dataset
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.dicom.parsing import read_dataset
from imaging.models import Image, Study
from imaging.storage import blob_read
from inference.models import Prediction, PredictionStatus, Review, ReviewAmendment

COMPREHENSIVE_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.33"
# Concepts DICOM does not code (the product's own scheme, as PS3.16 allows with a 99 prefix).
PRIVATE_SCHEME = "99MEDPORTAL"
SR_SERIES_NUMBER = 9901
SR_MANUFACTURER = "MedPortal"
SR_SERIES_DESCRIPTION = "MedPortal AI second opinion"
# A model that declined the image gave no label; its report says so, and why, in place of a finding.
NOT_RUN_CODE = "NOT_RUN"
NOT_RUN_MEANING = "AI result not given"
DISCLAIMER = (
    "AI second opinion, not a diagnosis. The confidence is the model's calibrated probability; "
    "the result must be reviewed by a radiologist."
)
# A refusal has no confidence to explain: it says that the images need a radiologist's own read.
NOT_RUN_DISCLAIMER = (
    "AI second opinion not given: the model declined this image. The images must be read by a radiologist "
    "without an AI second opinion from this model."
)

# Patient and General Study module attributes carried over so viewers file the report with the images.
_PATIENT_STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
    "SpecificCharacterSet",
)


_UID_NAMESPACE = uuid.UUID("0f7c4a36-9a51-4c33-9a9c-2d2f1a0e5b11")


def _uid(*parts: object) -> str:
    # The same prediction always gives the same UIDs: downloading twice must not make a second report in a PACS.
    name = "|".join(str(part) for part in parts)
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


def study_uid(study: Study) -> str:
    """The study's Study Instance UID, or a stable one derived from its id for studies that came as PNG/JPEG."""
    return study.study_instance_uid or f"2.25.{uuid.UUID(str(study.id)).int}"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning[:64]
    return item


def _item(relationship: str, value_type: str, concept: Dataset) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([concept])
    return item


def _text(relationship: str, concept: Dataset, text: str) -> Dataset:
    item = _item(relationship, "TEXT", concept)
    item.TextValue = text
    return item


def _num(concept: Dataset, value: float, unit: Dataset) -> Dataset:
    item = _item("CONTAINS", "NUM", concept)
    measured = Dataset()
    measured.NumericValue = f"{value:.4f}"[:16]
    measured.MeasurementUnitsCodeSequence = Sequence([unit])
    item.MeasuredValueSequence = Sequence([measured])
    return item


def _source_dataset(image: Image) -> Dataset | None:
    if image.content_type != DICOM_CONTENT_TYPE:
        return None
    return read_dataset(blob_read(image.file.name))


def _patient_study_from_db(target: Dataset, study: Study) -> None:
    patient = study.patient
    target.PatientName = f"{patient.family_name}^{patient.given_name}".rstrip("^")
    target.PatientID = patient.mrn
    target.PatientBirthDate = patient.birth_date.strftime("%Y%m%d") if patient.birth_date else ""
    target.PatientSex = patient.sex if patient.sex in ("M", "F", "O") else ""
    target.StudyInstanceUID = study_uid(study)
    target.StudyDate = study.study_date.strftime("%Y%m%d") if study.study_date else ""
    target.StudyTime = ""
    target.ReferringPhysicianName = study.referring_physician.replace(" ", "^")
    target.StudyID = ""
    target.AccessionNumber = study.accession_number[:16]
    target.StudyDescription = study.description[:64]


def has_report(prediction: Prediction) -> bool:
    """Whether this prediction can be exported as an SR: a result, or a model's refusal to read the image."""
    return prediction.status == PredictionStatus.SUCCEEDED or prediction.not_run


def report_revision(prediction: Prediction) -> int:
    """Which version of the report the result and its review make now: 1 for the AI's result alone,
    2 once reviewed, and one more for each amendment of the review."""
    review = Review.objects.filter(prediction_id=prediction.id).first()
    if review is None:
        return 1
    return 2 + ReviewAmendment.objects.filter(review=review).count()


def report_instance_uid(prediction: Prediction, revision: int) -> str:
    """The SOP Instance UID of one revision: the same however often it is built, another for each revision.

    Revision 1 keeps the UID reports were first downloaded under. A refusal has a UID of its own:
    should the image be read after all (queued again once the model's check has changed), the
    result is another report, not the refusal again.
    """
    if prediction.not_run:
        return _uid("sr-instance", prediction.id, "not-run")
    return _uid("sr-instance", prediction.id) if revision == 1 else _uid("sr-instance", prediction.id, revision)


def report_series_uid(study_instance_uid: str, model) -> str:
    """One series per model in each study holds every revision of every report of that model."""
    return _uid("sr-series", study_instance_uid, model.name)


def prediction_sr_dataset(*, prediction, revision: int | None = None, instance_number: int = 1) -> FileDataset:
    """A Comprehensive SR stating the model, its version, the label and the confidence of one AI result,
    and the radiologist's review when there is one.

    For an image the model declined (``Prediction.not_run``) the report is complete too: it states
    the model and its version and, instead of a finding, that no label was given and why.
    ``revision`` defaults to the current one (``report_revision``).
    """
    if not has_report(prediction):
        raise ValueError("Only a finished AI second opinion or a model's refusal can be exported as a report.")
    revision = report_revision(prediction) if revision is None else revision
    image, model = prediction.image, prediction.model
    study = image.study
    source = _source_dataset(image)
    finished = timezone.localtime(prediction.finished_at or timezone.now())

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = COMPREHENSIVE_SR_STORAGE
    meta.MediaStorageSOPInstanceUID = report_instance_uid(prediction, revision)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)

    if source is not None:
        for keyword in _PATIENT_STUDY_KEYWORDS:
            if keyword in source:
                ds[keyword] = source[keyword]
    else:
        _patient_study_from_db(ds, study)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime"):
        if keyword not in ds:
            setattr(ds, keyword, "")
    for keyword in ("ReferringPhysicianName", "StudyID", "AccessionNumber"):
        if keyword not in ds:
            setattr(ds, keyword, "")

    ds.SOPClassUID = COMPREHENSIVE_SR_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.SeriesInstanceUID = report_series_uid(ds.StudyInstanceUID, model)
    ds.SeriesNumber = SR_SERIES_NUMBER
    ds.SeriesDescription = f"{SR_SERIES_DESCRIPTION}: {model.display_name}"[:64]
    ds.InstanceNumber = instance_number
    ds.Manufacturer = SR_MANUFACTURER
    ds.ManufacturerModelName = model.name[:64]
    ds.SoftwareVersions = str(model.version)[:64]
    ds.InstanceCreationDate = ds.ContentDate = finished.strftime("%Y%m%d")
    ds.InstanceCreationTime = ds.ContentTime = finished.strftime("%H%M%S")
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.PerformedProcedureCodeSequence = Sequence()

    if source is not None:
        referenced = Dataset()
        referenced.ReferencedSOPClassUID = image.sop_class_uid
        referenced.ReferencedSOPInstanceUID = image.sop_instance_uid
        series = Dataset()
        series.SeriesInstanceUID = image.series_instance_uid or str(source.get("SeriesInstanceUID", ""))
        series.ReferencedSOPSequence = Sequence([referenced])
        evidence = Dataset()
        evidence.StudyInstanceUID = ds.StudyInstanceUID
        evidence.ReferencedSeriesSequence = Sequence([series])
        ds.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])

    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic imaging report")])
    ds.ContinuityOfContent = "SEPARATE"
    content = [
        _code_item("HAS OBS CONTEXT", _code("121005", "DCM", "Observer Type"), _code("121007", "DCM", "Device")),
        _uidref("HAS OBS CONTEXT", _code("121012", "DCM", "Device Observer UID"), _uid("device", model.id)),
        _text("HAS OBS CONTEXT", _code("121013", "DCM", "Device Observer Name"), model.display_name[:64]),
        _text("HAS OBS CONTEXT", _code("121015", "DCM", "Device Observer Model Name"), model.name),
        _text("CONTAINS", _code("111001", "DCM", "Algorithm Name"), model.name),
        _text("CONTAINS", _code("111003", "DCM", "Algorithm Version"), str(model.version)),
    ]
    if prediction.not_run:
        content.append(_text("CONTAINS", _code(NOT_RUN_CODE, PRIVATE_SCHEME, NOT_RUN_MEANING), prediction.error))
    else:
        content += [
            _text("CONTAINS", _code("121071", "DCM", "Finding"), prediction.label),
            _num(_code("CONFIDENCE", PRIVATE_SCHEME, "Calibrated confidence"), prediction.confidence * 100, _percent()),
        ]
        probabilities = _item("CONTAINS", "CONTAINER", _code("PROBABILITIES", PRIVATE_SCHEME, "Class probabilities"))
        probabilities.ContinuityOfContent = "SEPARATE"
        probabilities.ContentSequence = Sequence(
            [
                _num(_code(f"P{index}", PRIVATE_SCHEME, f"Probability of {label}"), value * 100, _percent())
                for index, (label, value) in enumerate((prediction.probabilities or {}).items())
            ]
        )
        content.append(probabilities)
    if source is not None:
        reference = _item("CONTAINS", "IMAGE", _code("121112", "DCM", "Source of Measurement"))
        referenced = Dataset()
        referenced.ReferencedSOPClassUID = image.sop_class_uid
        referenced.ReferencedSOPInstanceUID = image.sop_instance_uid
        reference.ReferencedSOPSequence = Sequence([referenced])
        content.append(reference)
    review = _review(prediction)
    if review is not None:
        content.append(
            _text(
                "CONTAINS",
                _code("REVIEW", PRIVATE_SCHEME, "Radiologist review"),
                f"{review.get_decision_display()}: {review.final_label} ({review.reviewer}, "
                f"{timezone.localtime(review.reviewed_at):%Y-%m-%d %H:%M})",
            )
        )
    disclaimer = NOT_RUN_DISCLAIMER if prediction.not_run else DISCLAIMER
    content.append(_text("CONTAINS", _code("121106", "DCM", "Comment"), disclaimer))
    ds.ContentSequence = Sequence(content)
    return ds


def _review(prediction: Prediction) -> Review | None:
    return Review.objects.select_related("reviewer").filter(prediction_id=prediction.id).first()


def _percent() -> Dataset:
    return _code("%", "UCUM", "percent")


def _code_item(relationship: str, concept: Dataset, value: Dataset) -> Dataset:
    item = _item(relationship, "CODE", concept)
    item.ConceptCodeSequence = Sequence([value])
    return item


def _uidref(relationship: str, concept: Dataset, value: str) -> Dataset:
    item = _item(relationship, "UIDREF", concept)
    item.UID = value
    return item


def prediction_sr_bytes(*, prediction, revision: int | None = None, instance_number: int = 1) -> bytes:
    """The report as a DICOM Part 10 file."""
    buffer = io.BytesIO()
    dataset = prediction_sr_dataset(prediction=prediction, revision=revision, instance_number=instance_number)
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def sr_filename(prediction) -> str:
    return f"ai-report-{prediction.id}.dcm"
