import pytest

from audit.models import AuditAction, AuditEvent
from patients.models import Patient
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def test_staff_registers_a_patient_and_reads_it_back(client_for_role):
    client = client_for_role("staff")
    response = client.post(
        "/api/v1/patients/",
        {"mrn": " H-1001 ", "family_name": "Lovelace", "given_name": "Ada", "sex": "F", "birth_date": "1815-12-10"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["mrn"] == "H-1001"
    patient = Patient.objects.get(id=body["id"])
    assert patient.created_by.username == "api-staff"

    listed = client.get("/api/v1/patients/", {"mrn": "h-1001"}).json()
    assert listed["count"] == 1
    assert listed["results"][0]["id"] == body["id"]
    detail = client.get(f"/api/v1/patients/{patient.id}/")
    assert detail.status_code == 200
    assert detail.json()["family_name"] == "Lovelace"


def test_duplicate_mrn_is_a_field_error(client_for_role):
    PatientFactory(mrn="DUP-1")
    response = client_for_role("staff").post("/api/v1/patients/", {"mrn": "DUP-1", "family_name": "X"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == 400
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["mrn"]
    assert Patient.objects.filter(mrn="DUP-1").count() == 1


def test_missing_fields_are_reported_per_field(client_for_role):
    response = client_for_role("staff").post("/api/v1/patients/", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"mrn", "family_name"}


@pytest.mark.parametrize(
    ("role", "expected"), [("anonymous", 401), ("roleless", 403), ("radiologist", 403), ("admin", 201)]
)
def test_only_staff_and_admins_register_patients(client_for_role, role, expected):
    response = client_for_role(role).post("/api/v1/patients/", {"mrn": "R-1", "family_name": "Roe"}, format="json")
    assert response.status_code == expected
    assert Patient.objects.filter(mrn="R-1").exists() == (expected == 201)
    if expected != 201:
        assert response.json()["error"]["status"] == expected


@pytest.mark.parametrize(("role", "expected"), [("anonymous", 401), ("roleless", 403), ("radiologist", 200)])
def test_reading_a_patient_needs_a_clinical_role(client_for_role, role, expected):
    patient = PatientFactory()
    assert client_for_role(role).get(f"/api/v1/patients/{patient.id}/").status_code == expected


@pytest.mark.parametrize(
    ("role", "expected"), [("anonymous", 401), ("roleless", 403), ("radiologist", 403), ("staff", 200)]
)
def test_searching_patients_is_for_staff(client_for_role, role, expected):
    assert client_for_role(role).get("/api/v1/patients/").status_code == expected


def test_reading_one_patient_writes_exactly_one_audit_row(client_for_role, user_for_role):
    patient = PatientFactory()
    before = AuditEvent.objects.count()
    response = client_for_role("radiologist").get(f"/api/v1/patients/{patient.id}/", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.latest("id")
    assert event.actor == user_for_role("radiologist")
    assert event.patient_id == patient.id
    assert event.action == AuditAction.READ
    assert event.interface == "api"
    assert event.ip_address == "10.1.2.3"
    assert event.object_type == "patients.patient"
    assert event.object_id == str(patient.id)


def test_unknown_patient_is_404_in_the_error_shape(client_for_role):
    response = client_for_role("staff").get("/api/v1/patients/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
