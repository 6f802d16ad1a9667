"""What MedPortal's records say in DICOM attributes: the patient and study part of a DICOMweb or
C-FIND answer, written once for both."""

from pydicom import Dataset

from imaging.dicom.parsing import dicom_patient_id
from imaging.models import Study
from patients.models import Patient

# Every answer is UTF-8 text.
CHARACTER_SET = "ISO_IR 192"


def _person_name(family: str, given: str) -> str:
    return f"{family}^{given}".rstrip("^")


def patient_values(patient: Patient) -> list[tuple[str, object]]:
    """The patient's attributes as (keyword, value) pairs: what both a Dataset and DICOM JSON are built from."""
    return [
        ("PatientName", _person_name(patient.family_name, patient.given_name)),
        ("PatientID", dicom_patient_id(patient.mrn)),
        ("PatientBirthDate", patient.birth_date.strftime("%Y%m%d") if patient.birth_date else ""),
        ("PatientSex", patient.sex if patient.sex in ("M", "F", "O") else ""),
    ]


def _accession(study: Study) -> str:
    """The AccessionNumber DICOM answers: the one the instances carry, never a key MedPortal generated."""
    return study.dicom_accession_number if study.study_instance_uid else study.accession_number


def study_values(study: Study, *, modalities: list[str] | None = None) -> list[tuple[str, object]]:
    """The study's attributes and its patient's (the counts are the caller's: they depend on the query).

    ``modalities`` is the study's ModalitiesInStudy (``dicom_study_modalities``, read for a page of
    studies at once); without it, or for a study whose instances predate the per-instance modality,
    the modality the study was filed as.
    """
    return [
        *patient_values(study.patient),
        ("StudyDate", study.study_date.strftime("%Y%m%d") if study.study_date else ""),
        ("StudyTime", study.study_time.strftime("%H%M%S") if study.study_time else ""),
        ("AccessionNumber", _accession(study)[:16]),
        ("ModalitiesInStudy", list(modalities or [study.modality])),
        ("ReferringPhysicianName", study.referring_physician.replace(" ", "^")),
        ("StudyInstanceUID", study.study_instance_uid),
        ("StudyID", study.dicom_study_id),
        ("StudyDescription", study.description[:64]),
    ]


def attributes_dataset(values: list[tuple[str, object]]) -> Dataset:
    item = Dataset()
    for keyword, value in values:
        setattr(item, keyword, value)
    return item


def patient_attributes(patient: Patient) -> Dataset:
    return attributes_dataset(patient_values(patient))


def study_attributes(study: Study, *, modalities: list[str] | None = None) -> Dataset:
    """The study's attributes and its patient's (the counts are the caller's: they depend on the query)."""
    return attributes_dataset(study_values(study, modalities=modalities))
