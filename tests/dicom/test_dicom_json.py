"""QIDO-RS study items are built as plain dicts; they must equal what pydicom writes for the same attributes."""

import datetime
import json

import pytest
from django.test import RequestFactory

from imaging.dicom.attributes import (
    CHARACTER_SET,
    STUDY_ROW_FIELDS,
    attributes_dataset,
    study_row,
    study_row_values,
    study_values,
)
from imaging.dicomweb import dicom_json
from imaging.models import Study
from patients.models import Patient
from tests.factories import PatientFactory, StudyFactory

TRICKY = [
    # family, given, referring physician, accession, description
    ("Smith", "Ann", "Dr Who", "ACC1", "Brain MRI"),
    ("O'Brien", "", "", "", ""),
    ("Müller-Lüdenscheidt", "Zoë", "Émile Zola", "ÄÖÜ", "Thorax pa/lat (ü)"),
    ("  Spaced ", " Given  ", "  ", " acc ", " trailing "),
    ("Back\\slash", "Name", "Ref\\Doc", "A\\B", "one\\two"),
    ("Yamada=山田", "Taro=太郎", "Dr=医", "X", "="),
    ("Caret^", "^", "^^", "^", "^"),
    ("x" * 120, "y" * 120, "z" * 120, "9" * 64, "w" * 255),
]


def _study(family, given, referring, accession, description, *, sex="F", birth=datetime.date(1950, 1, 2)) -> Study:
    patient = Patient(mrn="MRN-1", family_name=family, given_name=given, birth_date=birth, sex=sex)
    return Study(
        patient=patient,
        accession_number=accession,
        study_instance_uid="1.2.826.0.1.3680043.8.498.1",
        modality="MR",
        referring_physician=referring,
        description=description,
        study_date=datetime.date(2024, 2, 29) if birth else None,
    )


def _pydicom_json(study: Study, request) -> dict:
    item = attributes_dataset(study_values(study))
    item.SpecificCharacterSet = CHARACTER_SET
    item.NumberOfStudyRelatedSeries = 3
    item.NumberOfStudyRelatedInstances = 12
    item.RetrieveURL = dicom_json.dicomweb_url(request, "study", study_uid=study.study_instance_uid)
    return item.to_json_dict()


@pytest.mark.filterwarnings("ignore:The PN component length")
@pytest.mark.parametrize("values", TRICKY)
@pytest.mark.parametrize(("sex", "birth"), [("F", datetime.date(1950, 1, 2)), ("U", None)])
def test_study_item_equals_what_pydicom_writes(values, sex, birth):
    request = RequestFactory().get("/dicomweb/studies")
    study = _study(*values, sex=sex, birth=birth)
    built = dicom_json.study_json(request, study, series_count=3, instance_count=12)
    expected = _pydicom_json(study, request)
    assert built == expected
    assert json.dumps(built) == json.dumps(expected)  # the same keys in the same order


def test_plain_values_skip_pydicom_and_others_fall_back_to_it(monkeypatch):
    request = RequestFactory().get("/dicomweb/studies")
    built_by_pydicom = []
    original = dicom_json.attributes_dataset
    monkeypatch.setattr(dicom_json, "attributes_dataset", lambda v: built_by_pydicom.append(v) or original(v))

    dicom_json.study_json(request, _study(*TRICKY[0]), series_count=1, instance_count=1)
    assert built_by_pydicom == []
    dicom_json.study_json(request, _study(*TRICKY[4]), series_count=1, instance_count=1)
    assert len(built_by_pydicom) == 1


@pytest.mark.parametrize(
    "uid", ["1.2.826.0.1.3680043.8.498.1", "0", "2.25.12345678901234567890", "a b", "ü.1", "x?y#z"]
)
def test_study_url_builder_equals_the_reversed_url(uid):
    request = RequestFactory().get("/dicomweb/studies", HTTP_HOST="testserver:8443")
    assert dicom_json.study_url_builder(request)(uid) == dicom_json.dicomweb_url(request, "study", study_uid=uid)


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:The PN component length")
@pytest.mark.parametrize("values", TRICKY)
def test_a_study_read_as_a_row_answers_as_the_study_does(values):
    family, given, referring, accession, description = values
    study = StudyFactory(
        patient=PatientFactory(family_name=family, given_name=given, sex="M", birth_date=datetime.date(1960, 5, 6)),
        accession_number=accession[:64] or "unique-1",
        dicom_accession_number=accession[:64],
        study_instance_uid="1.2.826.0.1.3680043.8.498.7",
        dicom_study_id="ID 7",
        study_time=datetime.time(13, 4, 5),
        referring_physician=referring,
        description=description,
    )
    study = Study.objects.select_related("patient").get(pk=study.pk)
    [row] = Study.objects.filter(pk=study.pk).values(*STUDY_ROW_FIELDS)
    assert row == study_row(study)
    request = RequestFactory().get("/dicomweb/studies")
    for modalities in (None, ["CT", "MR"]):
        counts = {"series_count": 2, "instance_count": 5, "modalities": modalities}
        assert dicom_json.study_json(request, row, **counts) == dicom_json.study_json(request, study, **counts)
        assert study_row_values(row, modalities=modalities) == study_values(study, modalities=modalities)
