"""What MedPortal's records say in DICOM attributes: the patient and study part of a DICOMweb or
C-FIND answer, written once for both."""

from pydicom import Dataset

from imaging.models import Study
from patients.models import Patient

# Every answer is UTF-8 text.
CHARACTER_SET = "ISO_IR 192"


def _person_name(family: str, given: str) -> str:
    return f"{family}^{given}".rstrip("^")


def patient_attributes(patient: Patient) -> Dataset:
    item = Dataset()
    item.PatientName = _person_name(patient.family_name, patient.given_name)
    item.PatientID = patient.mrn
    item.PatientBirthDate = patient.birth_date.strftime("%Y%m%d") if patient.birth_date else ""
    item.PatientSex = patient.sex if patient.sex in ("M", "F", "O") else ""
    return item


def study_attributes(study: Study) -> Dataset:
    """The study's attributes and its patient's (the counts are the caller's: they depend on the query)."""
    item = patient_attributes(study.patient)
    item.StudyDate = study.study_date.strftime("%Y%m%d") if study.study_date else ""
    item.StudyTime = ""
    item.AccessionNumber = study.accession_number[:16]
    item.ModalitiesInStudy = [study.modality]
    item.ReferringPhysicianName = study.referring_physician.replace(" ", "^")
    item.StudyInstanceUID = study.study_instance_uid
    item.StudyID = ""
    item.StudyDescription = study.description[:64]
    return item
