"""The Django admin as administrators use it: pages render, AI outputs are read-only, actions work."""

import pytest

from audit.models import AuditEvent
from imaging.intake import image_upload
from inference.models import AIModelStatus, Prediction, PredictionStatus
from inference.services import aimodel_register
from tests.conftest import tiny_card
from tests.factories import PatientFactory, StudyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def prediction(tiny_model, sample_image_bytes):
    image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).image
    return image.predictions.get()


def test_every_changelist_and_change_page_renders(admin_client_, prediction):
    pages = [
        "/admin/patients/patient/", f"/admin/patients/patient/{prediction.image.study.patient_id}/change/",
        "/admin/imaging/study/?q=ACC", f"/admin/imaging/study/{prediction.image.study_id}/change/",
        "/admin/imaging/image/", f"/admin/imaging/image/{prediction.image_id}/change/",
        "/admin/inference/aimodel/", f"/admin/inference/aimodel/{prediction.model_id}/change/",
        "/admin/inference/prediction/?status=queued", f"/admin/inference/prediction/{prediction.id}/change/",
        "/admin/inference/review/", "/admin/audit/auditevent/",
    ]  # fmt: skip
    for page in pages:
        assert admin_client_.get(page).status_code == 200, page


def test_search_by_mrn_and_accession(admin_client_):
    patient = PatientFactory(mrn="FIND-ME-1")
    StudyFactory(patient=patient, accession_number="ACC-FIND-1")
    assert b"FIND-ME-1" in admin_client_.get("/admin/patients/patient/?q=FIND-ME").content
    assert b"ACC-FIND-1" in admin_client_.get("/admin/imaging/study/?q=FIND-ME-1").content


def test_ai_outputs_cannot_be_edited_or_added(admin_client_, prediction):
    response = admin_client_.post(
        f"/admin/inference/prediction/{prediction.id}/change/", {"label": "pneumonia", "confidence": 0.99}
    )
    prediction.refresh_from_db()
    assert prediction.label == "" and prediction.status == PredictionStatus.QUEUED
    assert response.status_code in (200, 302, 403)
    assert admin_client_.get("/admin/inference/prediction/add/").status_code == 403


def test_requeue_failed_action(admin_client_, prediction):
    Prediction.objects.filter(id=prediction.id).update(status=PredictionStatus.FAILED, error="boom")
    admin_client_.post(
        "/admin/inference/prediction/", {"action": "requeue_failed", "_selected_action": [str(prediction.id)]}
    )
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.QUEUED and prediction.error == ""


def test_retire_action_stops_routing(admin_client_, tiny_model, sample_image_bytes):
    admin_client_.post("/admin/inference/aimodel/", {"action": "retire", "_selected_action": [str(tiny_model.id)]})
    tiny_model.refresh_from_db()
    assert tiny_model.status == AIModelStatus.RETIRED
    image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-2.png")).image
    assert not image.predictions.exists()


def test_rerun_past_images_on_a_new_version(admin_client_, tiny_model, tiny_model_file, sample_image_bytes):
    image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).image
    new = aimodel_register(weights_path=tiny_model_file, card=tiny_card(version="0.0.2"))
    admin_client_.post("/admin/inference/aimodel/", {"action": "rerun_past_images", "_selected_action": [str(new.id)]})
    assert set(image.predictions.values_list("model__version", flat=True)) == {"0.0.1", "0.0.2"}


def test_opening_a_patient_in_the_admin_is_audited(admin_client_, admin_user):
    patient = PatientFactory()
    admin_client_.get(f"/admin/patients/patient/{patient.id}/change/")
    event = AuditEvent.objects.get(patient_id=patient.id)
    assert event.actor == admin_user and event.interface == "admin"
