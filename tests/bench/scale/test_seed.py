"""The scale benchmark's seed, at a few hundred rows: every table it fills, with rows the models
accept, so that a model gaining a column breaks this test rather than the benchmark's numbers."""

import re

import pytest
from django.apps import apps
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from bench.scale import seed as scale_seed
from imaging.models import Image, Study, StudyStatus
from inference.models import Prediction, PredictionStatus, Review
from inference.selectors import aimodels_for_study
from patients.models import Patient
from tests.support.predictions import study_ai_flags_recomputed, study_ai_flags_stored

pytestmark = [
    pytest.mark.django_db(transaction=True),  # the seed ends with VACUUM, which no transaction may hold
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the seed is PostgreSQL's set-based SQL"),
]

SCALE = 0.002

# Columns the seed leaves to their defaults on purpose: each is empty or null for the rows it
# writes (no claim held, no heatmap drawn, no SR stored). A column missing from this list and
# from the seed's INSERT fails the test below: decide what the seed should put in it.
LEFT_TO_DEFAULTS = {
    "patients_patient": set(),
    "imaging_study": set(),
    "imaging_image": set(),
    "inference_prediction": {"claim_token"},
    "inference_review": set(),
    "audit_auditevent": {"id"},
}


@pytest.fixture
def seeded():
    with CaptureQueriesContext(connection) as captured:
        result = scale_seed.seed(SCALE)
    inserts = {}
    for query in captured.captured_queries:
        match = re.search(r"INSERT INTO (\w+) \(([^)]*)\)", query["sql"])
        if match and match.group(1) in LEFT_TO_DEFAULTS:
            inserts[match.group(1)] = {column.strip() for column in match.group(2).split(",")}
    return result, inserts


def test_every_table_has_its_rows_at_a_small_scale(seeded):
    result, _ = seeded
    studies = round(scale_seed.STUDIES * SCALE)
    expected_predictions = sum(
        len(aimodels_for_study(study=study)) * study.images.count() for study in Study.objects.all()
    )
    assert result["counts"] == {
        "patients_patient": round(scale_seed.PATIENTS * SCALE),
        "imaging_study": studies,
        "imaging_image": studies * scale_seed.IMAGES_PER_STUDY,
        "inference_prediction": expected_predictions,
        "inference_review": round(scale_seed.REVIEWS * SCALE),
        "audit_auditevent": round(scale_seed.AUDIT_EVENTS * SCALE),
        "imaging_study (DICOM)": Study.objects.filter(study_instance_uid__isnull=False).count(),
    }
    assert result["counts"]["imaging_study (DICOM)"] > 0
    # The backlog shrinks with the rest below scale 1: every status is there, most studies reviewed.
    by_status = {status: Study.objects.filter(status=status).count() for status in StudyStatus.values}
    assert all(by_status.values()), by_status
    assert by_status[StudyStatus.REVIEWED] > studies // 2


def test_the_ids_the_requests_ask_for_exist_at_this_scale(seeded):
    result, _ = seeded
    ids = result["ids"]
    patient = Patient.objects.get(pk=ids["patient"])
    assert patient.mrn == ids["patient_mrn"]
    assert Study.objects.get(pk=ids["worklist_study"]).status == StudyStatus.AI_DONE
    dicom = Study.objects.get(pk=ids["dicom_study"])
    assert (dicom.study_instance_uid, dicom.patient.mrn) == (ids["dicom_study_uid"], ids["dicom_mrn"])
    assert Prediction.objects.filter(model__name=ids["model_name"]).exists()
    assert set(result["tokens"]) == set(result["sessions"]) == {"staff", "radiologist", "admin"}


def test_every_column_is_filled_or_left_to_its_default_on_purpose(seeded):
    _, inserts = seeded
    assert set(inserts) == set(LEFT_TO_DEFAULTS)
    for table, written in inserts.items():
        model = next(m for m in apps.get_models() if m._meta.db_table == table)
        columns = {field.column for field in model._meta.concrete_fields}
        assert columns - written == LEFT_TO_DEFAULTS[table], table
        assert written <= columns, table


@pytest.mark.parametrize("model", [Patient, Study, Image, Prediction, Review, AuditEvent])
def test_every_row_passes_the_models_validation(seeded, model):
    # Uniqueness and check constraints are the database's own, enforced as the rows went in.
    rows = list(model.objects.all())
    assert rows
    for row in rows:
        row.full_clean(validate_unique=False, validate_constraints=False)


def test_dicom_rows_carry_what_dicom_queries_answer(seeded):
    dicom_studies = Study.objects.filter(study_instance_uid__isnull=False)
    assert dicom_studies.exists()
    for study in dicom_studies:
        assert study.dicom_accession_number and study.dicom_study_id, study
        assert study.study_date and study.study_time, study
        for image in study.images.all():
            assert image.sop_instance_uid and image.series_instance_uid and image.sop_class_uid, image
            assert image.transfer_syntax_uid and image.modality == study.modality, image
    assert not Image.objects.filter(study__study_instance_uid__isnull=True).exclude(modality="").exists()


def test_predictions_and_reviews_match_their_study_status(seeded):
    succeeded = Prediction.objects.filter(status=PredictionStatus.SUCCEEDED)
    assert not succeeded.filter(image__study__status__in=[StudyStatus.RECEIVED, StudyStatus.AI_PENDING]).exists()
    assert not succeeded.filter(confidence__isnull=True).exists()
    assert not Review.objects.exclude(prediction__status=PredictionStatus.SUCCEEDED).exists()
    assert not Review.objects.exclude(prediction__image__study__status=StudyStatus.REVIEWED).exists()
    assert not Prediction.objects.exclude(study_modality=F("image__study__modality")).exists()
    assert set(Prediction.objects.filter(reviewed=True).values_list("id", flat=True)) == set(
        Review.objects.values_list("prediction_id", flat=True)
    )


def test_the_ai_flags_kept_on_the_studies_match_their_results_and_reviews(seeded):
    stored = study_ai_flags_stored()
    assert stored == study_ai_flags_recomputed()
    assert any(flagged for _, flagged in stored.values())


def test_a_kept_database_gets_new_page_sessions_for_its_users(seeded, client):
    """A kept database's sessions end after the idle timeout; a re-run opens new ones."""
    result, _ = seeded
    sessions = scale_seed.fresh_sessions()["sessions"]
    assert set(sessions) == set(result["sessions"])
    assert not set(sessions.values()) & set(result["sessions"].values())
    client.cookies["sessionid"] = sessions["radiologist"]
    response = client.get("/worklist/")
    assert response.status_code == 200
    assert response.wsgi_request.user.username == "scale-radiologist"
