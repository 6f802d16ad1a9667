import pytest

from imaging.intake import image_upload
from imaging.models import Study
from tests.factories import PatientFactory, StudyFactory
from tests.support.images import png_bytes

pytestmark = pytest.mark.django_db


def test_staff_registers_a_study_for_a_patient(client_for_role):
    patient = PatientFactory()
    client = client_for_role("staff")
    response = client.post(
        "/api/v1/studies/",
        {"patient": str(patient.id), "accession_number": "A-1", "modality": "DX", "body_part": "CHEST", "priority": 1},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["patient"] == str(patient.id)
    assert body["priority"] == 1
    assert body["status"] == "received"
    assert body["image_count"] == 0
    listed = client.get("/api/v1/studies/", {"patient": str(patient.id)}).json()
    assert [row["id"] for row in listed["results"]] == [body["id"]]
    assert client.get(f"/api/v1/studies/{body['id']}/").json()["accession_number"] == "A-1"


def test_invalid_choice_and_unknown_patient_are_field_errors(client_for_role):
    response = client_for_role("staff").post(
        "/api/v1/studies/",
        {
            "patient": "00000000-0000-0000-0000-000000000000",
            "accession_number": "A-2",
            "modality": "XX",
            "body_part": "CHEST",
        },
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"patient", "modality"}
    assert not Study.objects.exists()


def test_filters_by_modality_and_accession(client_for_role):
    StudyFactory(accession_number="ACC-CT", modality="CT", body_part="HEAD")
    StudyFactory(accession_number="ACC-DX")
    client = client_for_role("radiologist")
    assert [r["accession_number"] for r in client.get("/api/v1/studies/?modality=CT").json()["results"]] == ["ACC-CT"]
    assert client.get("/api/v1/studies/?accession=acc-dx").json()["count"] == 1
    assert client.get("/api/v1/studies/?modality=NOPE").status_code == 400


def test_staff_corrects_a_study_and_routing_fields_are_frozen_once_images_exist(client_for_role, tiny_model):
    study = StudyFactory(description="old")
    client = client_for_role("staff")
    response = client.patch(
        f"/api/v1/studies/{study.id}/", {"description": "Cough, 3 days", "priority": 1}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["description"] == "Cough, 3 days" and response.json()["priority"] == 1

    image_upload(study=study, data=png_bytes())
    response = client.patch(f"/api/v1/studies/{study.id}/", {"modality": "US"}, format="json")
    assert response.status_code == 400
    assert "modality" in response.json()["error"]["fields"]
    study.refresh_from_db()
    assert study.modality == "DX"
