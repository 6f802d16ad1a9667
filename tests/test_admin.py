"""The Django admin as administrators use it: pages render, AI outputs are read-only, actions work."""

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError

from accounts.policy import PolicyAdminMixin
from audit.admin import AuditedAdminMixin
from audit.models import AuditEvent
from imaging.intake import image_upload
from inference.models import AIModelStatus, Prediction, PredictionStatus, Review, ReviewAmendment, ReviewDecision
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


def _reaches_patient(model, seen=()) -> bool:
    """Whether the model's rows are patient data: the Patient itself or anything with a foreign key to it."""
    if model._meta.label_lower == "patients.patient":
        return True
    targets = [f.related_model for f in model._meta.fields if f.many_to_one or f.one_to_one]
    return any(target not in seen and _reaches_patient(target, (*seen, model)) for target in targets)


# Admin pages deliberately left without audit rows, and why.
NOT_AUDITED = {
    "audit.auditevent": "the trail itself: ids, no names, administrators only",
}


def test_every_admin_of_patient_data_is_audited():
    patient_data = [model for model in admin.site._registry if _reaches_patient(model)]
    assert {"patients.patient", "imaging.study", "inference.review"} <= {m._meta.label_lower for m in patient_data}
    for model in patient_data:
        model_admin = admin.site._registry[model]
        # Its permissions come from the one role table, as for the pages, the API and DICOMweb.
        assert isinstance(model_admin, PolicyAdminMixin) and model_admin.policy_resource, model._meta.label_lower
        if model._meta.label_lower not in NOT_AUDITED:
            assert isinstance(model_admin, AuditedAdminMixin), model._meta.label_lower


@pytest.fixture
def review(prediction, admin_user):
    return Review.objects.create(
        prediction=prediction, decision=ReviewDecision.AGREE, final_label="normal", reviewer=admin_user
    )


def test_every_admin_view_of_patient_data_writes_its_audit_rows(admin_client_, admin_user, review):
    prediction = review.prediction
    image = prediction.image
    study = image.study
    records = {
        "patients/patient": study.patient,
        "imaging/study": study,
        "imaging/image": image,
        "inference/prediction": prediction,
        "inference/review": review,
    }
    for path, obj in records.items():
        base = f"/admin/{path}/"
        views = [
            (base, "read", "list", 1),
            (f"{base}?q={study.patient.mrn if obj is study.patient else study.accession_number}", "read", "search", 1),
            (f"{base}{obj.pk}/change/", "read", "", 1),
            (f"{base}{obj.pk}/history/", "read", "history", 1),
        ]
        if path in ("patients/patient", "imaging/study", "imaging/image"):  # AI outputs are never deleted
            views.append((f"{base}{obj.pk}/delete/", "read", "delete confirmation", 1))
        for url, action, detail, rows in views:
            before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
            assert admin_client_.get(url).status_code == 200, url
            new = list(AuditEvent.objects.filter(id__gt=before))
            assert new and (rows is None or len(new) == rows), url
            for event in new:
                assert (event.action, event.detail, event.interface) == (action, detail, "admin"), url
                assert event.actor == admin_user and event.ip_address, url
            assert str(obj.pk) in {event.object_id for event in new}, url
            if path != "patients/patient":
                assert {event.patient_id for event in new} == {study.patient_id}, url


def test_admin_actions_and_deletes_are_audited(admin_client_, prediction):
    study = prediction.image.study
    admin_client_.post("/admin/imaging/study/", {"action": "rerun_ai", "_selected_action": [str(study.id)]})
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.detail, event.object_id) == ("update", "action rerun_ai", str(study.id))

    other = StudyFactory()
    admin_client_.post("/admin/imaging/study/", {"action": "delete_selected", "_selected_action": [str(other.id)]})
    assert AuditEvent.objects.latest("id").detail == "delete confirmation"
    admin_client_.post(
        "/admin/imaging/study/", {"action": "delete_selected", "_selected_action": [str(other.id)], "post": "yes"}
    )
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.object_id, event.patient_id) == ("delete", str(other.id), other.patient_id)

    third = StudyFactory()
    admin_client_.post(f"/admin/imaging/study/{third.id}/delete/", {"post": "yes"})
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.object_id) == ("delete", str(third.id))


def test_reviews_cannot_be_deleted_in_the_admin_or_the_api(admin_client_, admin_user, review, api_client):
    assert admin_client_.get(f"/admin/inference/review/{review.id}/delete/").status_code == 403
    admin_client_.post(f"/admin/inference/review/{review.id}/delete/", {"post": "yes"})
    admin_client_.post(
        "/admin/inference/review/", {"action": "delete_selected", "_selected_action": [str(review.id)], "post": "yes"}
    )
    api_client.force_authenticate(admin_user)
    assert api_client.delete(f"/api/v1/reviews/{review.id}/").status_code in (403, 405)
    assert Review.objects.filter(id=review.id).exists()


def test_a_study_with_images_keeps_its_patient_and_modality_in_the_admin(admin_client_, prediction):
    study = prediction.image.study
    other = PatientFactory()
    page = admin_client_.get(f"/admin/imaging/study/{study.id}/change/").content.decode()
    assert 'name="patient"' not in page and 'name="modality"' not in page and 'name="accession_number"' in page
    admin_client_.post(
        f"/admin/imaging/study/{study.id}/change/",
        {"patient": str(other.id), "modality": "CT", "accession_number": study.accession_number, "priority": 2},
    )
    study.refresh_from_db()
    assert study.patient_id != other.id and study.modality != "CT"

    study.patient = other
    with pytest.raises(ValidationError) as refused:
        study.full_clean()
    assert "patient" in refused.value.message_dict

    empty = StudyFactory()
    assert 'name="patient"' in admin_client_.get(f"/admin/imaging/study/{empty.id}/change/").content.decode()
    empty.patient = other
    empty.full_clean()


def test_a_reviews_amendments_are_shown_read_only_and_audited(admin_client_, admin_user, review):
    review.amendments.create(
        previous_decision=ReviewDecision.OVERRIDE,
        previous_final_label="pneumonia",
        previous_comment="First read.",
        previous_reviewed_at=review.reviewed_at,
        reason="Prior CT shows no consolidation.",
        amended_by=admin_user,
    )
    url = f"/admin/inference/review/{review.id}/change/"
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    page = admin_client_.get(url).content.decode()

    assert "Prior CT shows no consolidation." in page and "First read." in page
    # Shown, not a form: no inputs for its rows, no row to add, nothing to delete.
    assert 'name="amendments-0-reason"' not in page and "amendments-0-DELETE" not in page
    assert 'name="amendments-MAX_NUM_FORMS" value="0"' in page
    [event] = AuditEvent.objects.filter(id__gt=before)
    assert (event.action, event.object_id, event.interface) == ("read", str(review.id), "admin")
    assert ReviewAmendment not in admin.site._registry  # no admin page of its own to add or change one

    admin_client_.post(
        url,
        {
            "amendments-TOTAL_FORMS": "2",
            "amendments-INITIAL_FORMS": "1",
            "amendments-0-id": str(review.amendments.get().id),
            "amendments-0-reason": "Rewritten.",
            "amendments-1-reason": "Added.",
            "amendments-1-previous_decision": "agree",
        },
    )
    assert list(review.amendments.values_list("reason", flat=True)) == ["Prior CT shows no consolidation."]


def test_admin_tab_titles_never_name_the_patient(admin_client_):
    patient = PatientFactory(family_name="Tabtitle", given_name="Tia", mrn="MRN-TAB")
    patient.family_name = "Tabtitle-Renamed"
    patient.save()
    historical = patient.history.first()
    pages = [
        f"/admin/patients/patient/{patient.id}/change/",
        f"/admin/patients/patient/{patient.id}/delete/",
        f"/admin/patients/patient/{patient.id}/history/",
        f"/admin/audit/historicalpatient/{historical.pk}/change/",
        f"/admin/audit/historicalpatient/{historical.pk}/history/",
    ]
    for page in pages:
        response = admin_client_.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        title = html.split("<title>", 1)[1].split("</title>", 1)[0]
        assert "TABTITLE" not in title.upper() and "Tia" not in title and "MRN-TAB" not in title, (page, title)
        assert title.endswith("| MedPortal admin"), (page, title)


def test_the_admin_is_branded_and_names_no_missing_icon(admin_client_):
    html = admin_client_.get("/admin/").content.decode()
    assert "MedPortal administration" in html and "Django administration" not in html
    assert '<link rel="icon" href="data:,">' in html
