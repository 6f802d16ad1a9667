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


def _patient_pairs(family: str, given: str, mrn: str, birth_date, sex: str) -> list[tuple[str, object]]:
    return [
        ("PatientName", _person_name(family, given)),
        ("PatientID", dicom_patient_id(mrn)),
        ("PatientBirthDate", birth_date.strftime("%Y%m%d") if birth_date else ""),
        ("PatientSex", sex if sex in ("M", "F", "O") else ""),
    ]


def patient_values(patient: Patient) -> list[tuple[str, object]]:
    """The patient's attributes as (keyword, value) pairs: what both a Dataset and DICOM JSON are built from."""
    return _patient_pairs(patient.family_name, patient.given_name, patient.mrn, patient.birth_date, patient.sex)


# What ``study_row_values`` reads: a ``values()`` query of studies gives these keys, and a Study its
# attributes under the same names (``study_row``).
STUDY_ROW_FIELDS = (
    "pk",
    "patient_id",
    "patient__family_name",
    "patient__given_name",
    "patient__mrn",
    "patient__birth_date",
    "patient__sex",
    "study_date",
    "study_time",
    "accession_number",
    "dicom_accession_number",
    "study_instance_uid",
    "modality",
    "referring_physician",
    "dicom_study_id",
    "description",
)


def study_row(study: Study) -> dict:
    """A Study (and its patient) as the ``values(*STUDY_ROW_FIELDS)`` row of it."""
    patient = study.patient
    return {
        name: getattr(patient, name.removeprefix("patient__")) if name.startswith("patient__") else getattr(study, name)
        for name in STUDY_ROW_FIELDS
    }


def study_values(study: Study, *, modalities: list[str] | None = None) -> list[tuple[str, object]]:
    """The study's attributes and its patient's (the counts are the caller's: they depend on the query).

    ``modalities`` is the study's ModalitiesInStudy (``modalities_in_study``, read with the page of
    studies); without it, or for a study whose instances predate the per-instance modality,
    the modality the study was filed as.
    """
    return study_row_values(study_row(study), modalities=modalities)


def study_row_values(row: dict, *, modalities: list[str] | None = None) -> list[tuple[str, object]]:
    """``study_values`` of a study read as a ``values(*STUDY_ROW_FIELDS)`` row.

    A QIDO-RS page of a thousand studies built as model instances (a Study and a Patient each) spent
    more time constructing them than writing their attributes.
    """
    study_date, study_time = row["study_date"], row["study_time"]
    # The AccessionNumber DICOM answers: the one the instances carry, never a key MedPortal generated.
    accession = row["dicom_accession_number"] if row["study_instance_uid"] else row["accession_number"]
    return [
        *_patient_pairs(
            row["patient__family_name"],
            row["patient__given_name"],
            row["patient__mrn"],
            row["patient__birth_date"],
            row["patient__sex"],
        ),
        ("StudyDate", study_date.strftime("%Y%m%d") if study_date else ""),
        ("StudyTime", study_time.strftime("%H%M%S") if study_time else ""),
        ("AccessionNumber", accession[:16]),
        ("ModalitiesInStudy", list(modalities or [row["modality"]])),
        ("ReferringPhysicianName", row["referring_physician"].replace(" ", "^")),
        ("StudyInstanceUID", row["study_instance_uid"]),
        ("StudyID", row["dicom_study_id"]),
        ("StudyDescription", row["description"][:64]),
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
