"""Whether a DICOM instance names the patient on record under its PatientID: name and birth date."""

import datetime
import io

import pydicom
import pytest

from imaging.dicom.identity import NO_NAME, identity_mismatches
from imaging.dicom.parsing import dicom_parse
from patients.models import Patient
from tests.dicom.support import chest_radiograph_dataset, dataset_bytes

RECORD = Patient(mrn="CXR-0001", family_name="Lovelace", given_name="Ada", birth_date=datetime.date(1960, 12, 10))


def instance(name: str | None, birth_date: str | None = "19601210"):
    dataset = chest_radiograph_dataset(patient_id="CXR-0001")
    if name is None:
        del dataset.PatientName
    else:
        dataset.PatientName = name
    if birth_date is None:
        del dataset.PatientBirthDate
    else:
        dataset.PatientBirthDate = birth_date
    return dicom_parse(dataset_bytes(pydicom.dcmread(io.BytesIO(dataset_bytes(dataset)))))


@pytest.mark.parametrize(
    "name",
    [
        "Lovelace^Ada",
        "LOVELACE^ADA",  # case
        "  lovelace ^ ada  ",  # spacing
        "Lovelace^Ada^Augusta^Lady",  # a middle name and a prefix the record leaves out
        "Lovelace^Adá",  # an accent an ASCII-only modality would have dropped
        "Lovelace^Ada=ラブレス^エイダ",  # an ideographic group beside the alphabetic one
        "Ada Lovelace",  # all in one component
        "Lovelace",  # no given name: nothing to compare it with
        "",  # no name, but the birth date agrees
    ],
)
def test_the_same_person_written_another_way_agrees(name):
    assert identity_mismatches(RECORD, instance(name)) == []


def test_a_different_name_or_birth_date_disagrees():
    assert identity_mismatches(RECORD, instance("Byron^Ada")) == ["family name"]
    assert identity_mismatches(RECORD, instance("Lovelace^Augusta")) == ["given name"]
    assert identity_mismatches(RECORD, instance("Lovelace^Ada", "19601211")) == ["birth date"]
    assert identity_mismatches(RECORD, instance("Smith^John", "19991231")) == [
        "family name",
        "given name",
        "birth date",
    ]


def test_what_is_missing_on_either_side_is_not_compared_but_something_must_be_there():
    assert identity_mismatches(RECORD, instance("Lovelace^Ada", None)) == []
    no_birth_date = Patient(mrn="X", family_name="Lovelace", given_name="Ada", birth_date=None)
    assert identity_mismatches(no_birth_date, instance("Lovelace^Ada", "19991231")) == []
    unnamed = Patient(mrn="X", family_name=NO_NAME, birth_date=datetime.date(1960, 12, 10))
    assert identity_mismatches(unnamed, instance("Anyone^Else")) == []
    # Neither a name nor a birth date: nothing confirms who it is.
    assert identity_mismatches(RECORD, instance(None, None)) == ["name and birth date missing"]
