"""Is the patient a DICOM instance names the patient on record under its PatientID?

A PatientID alone is not enough: modalities are fed mistyped IDs, and anyone who knows one ID
could file images under that patient. An instance must also agree on the name and birth date
it carries. Values are compared as a person would read them: DICOM PN components (``^``), case,
accents, punctuation and spacing do not matter; given names agree when the first given name does
(middle names are often left out); a name sent in one component ("John Smith") agrees when it has
the same words as the record.

What is missing is not compared: an instance without a birth date, or a record without one,
cannot disagree on it. An instance that carries neither a name nor a birth date cannot be
confirmed at all and does not match.
"""

import re
import unicodedata

from imaging.dicom.parsing import DicomInstance
from patients.models import Patient

# What patient_create writes when the DICOM file had no name: not a name to compare against.
NO_NAME = "(no name in DICOM)"


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text or "")
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", letters.casefold().replace("_", " ")).split())


def identity_mismatches(patient: Patient, instance: DicomInstance) -> list[str]:
    """The fields on which the instance disagrees with the patient on record ([] when it agrees)."""
    family, given = _plain(instance.patient_family_name), _plain(instance.patient_given_name)
    if not family and not given and instance.patient_birth_date is None:
        return ["name and birth date missing"]
    mismatches = []
    record_family = "" if patient.family_name == NO_NAME else _plain(patient.family_name)
    record_given = _plain(patient.given_name)
    same_words = sorted(f"{family} {given}".split()) == sorted(f"{record_family} {record_given}".split())
    if not same_words:
        if family and record_family and family != record_family:
            mismatches.append("family name")
        if given and record_given and given.split()[0] != record_given.split()[0]:
            mismatches.append("given name")
    if instance.patient_birth_date and patient.birth_date and instance.patient_birth_date != patient.birth_date:
        mismatches.append("birth date")
    return mismatches
