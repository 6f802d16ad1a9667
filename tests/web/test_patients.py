import uuid

import pytest
from django.urls import reverse

from patients.models import Patient
from tests.factories import PatientFactory, StudyFactory

pytestmark = pytest.mark.django_db


def test_list_searches_by_mrn_and_name(staff_client):
    PatientFactory(mrn="MRN-1001", family_name="Okafor", given_name="Ada")
    PatientFactory(mrn="MRN-2002", family_name="Lindqvist", given_name="Erik")

    by_name = staff_client.get(reverse("pages:patient-list"), {"q": "okaf"}).content.decode()
    assert "OKAFOR" in by_name and "LINDQVIST" not in by_name

    by_mrn = staff_client.get(reverse("pages:patient-list"), {"q": "MRN-2002"}).content.decode()
    assert "LINDQVIST" in by_mrn and "OKAFOR" not in by_mrn

    nothing = staff_client.get(reverse("pages:patient-list"), {"q": "zzz"}).content.decode()
    assert "No patient matches" in nothing


def test_list_paginates_and_keeps_the_search(staff_client):
    for i in range(30):
        PatientFactory(mrn=f"MRN-{i:04d}", family_name=f"Family{i:02d}")
    first = staff_client.get(reverse("pages:patient-list"), {"q": "Family"})
    assert first.context["page"].paginator.count == 30
    assert len(first.context["page"].object_list) == 25
    assert "q=Family&amp;page=2" in first.content.decode()
    second = staff_client.get(reverse("pages:patient-list"), {"q": "Family", "page": 2})
    assert len(second.context["page"].object_list) == 5


def test_create_patient_and_land_on_their_page(staff_client, staff_user):
    response = staff_client.post(
        reverse("pages:patient-create"),
        {"mrn": " MRN-7 ", "family_name": "Okafor", "given_name": "Ada", "birth_date": "1980-02-29", "sex": "F"},
    )
    patient = Patient.objects.get(mrn="MRN-7")
    assert response.status_code == 302
    assert response.url == reverse("pages:patient-detail", args=[patient.id])
    assert patient.created_by == staff_user
    page = staff_client.get(response.url).content.decode()
    assert "OKAFOR, Ada" in page and "No studies yet" in page


def test_create_shows_errors_next_to_the_fields(staff_client):
    PatientFactory(mrn="MRN-1")
    response = staff_client.post(
        reverse("pages:patient-create"), {"mrn": "MRN-1", "family_name": "", "birth_date": "not a date", "sex": "F"}
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) >= {"mrn", "family_name", "birth_date"}
    html = response.content.decode()
    assert 'class="field field--invalid"' in html
    assert "Patient with this MRN already exists." in html
    assert 'aria-invalid="true"' in html
    assert Patient.objects.count() == 1


def test_edit_patient(staff_client):
    patient = PatientFactory(mrn="MRN-5", family_name="Old")
    url = reverse("pages:patient-edit", args=[patient.id])
    assert 'value="Old"' in staff_client.get(url).content.decode()
    response = staff_client.post(url, {"mrn": "MRN-5", "family_name": "New", "given_name": "", "sex": "U"})
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.family_name == "New"


def test_refused_edit_changes_nothing(staff_client):
    PatientFactory(mrn="TAKEN")
    patient = PatientFactory(mrn="MRN-6", family_name="Keep")
    response = staff_client.post(
        reverse("pages:patient-edit", args=[patient.id]), {"mrn": "TAKEN", "family_name": "Changed", "sex": "U"}
    )
    assert response.status_code == 200
    assert "mrn" in response.context["form"].errors
    patient.refresh_from_db()
    assert (patient.mrn, patient.family_name) == ("MRN-6", "Keep")
    assert response.context["patient"].family_name == "Keep"


def test_patient_page_lists_their_studies(staff_client):
    patient = PatientFactory()
    StudyFactory(patient=patient, accession_number="ACC-A")
    StudyFactory(patient=patient, accession_number="ACC-B")
    StudyFactory(accession_number="ACC-OTHER")
    html = staff_client.get(reverse("pages:patient-detail", args=[patient.id])).content.decode()
    assert "ACC-A" in html and "ACC-B" in html and "ACC-OTHER" not in html


def test_unknown_patient_is_a_404(staff_client):
    assert staff_client.get(reverse("pages:patient-detail", args=[uuid.uuid4()])).status_code == 404


def test_page_titles_never_name_the_patient(staff_client):
    # Titles are kept in browser history, tab bars and window lists, where anyone at the
    # workstation sees them; the page itself still names the patient.
    patient = PatientFactory(family_name="Titlecheck", given_name="Tess", mrn="MRN-TITLE")
    for name in ("pages:patient-detail", "pages:patient-edit", "pages:study-create"):
        html = staff_client.get(reverse(name, args=[patient.id])).content.decode()
        title = html.split("<title>", 1)[1].split("</title>", 1)[0]
        assert "TITLECHECK" not in title.upper() and "Tess" not in title and "MRN-TITLE" not in title, title
        assert "TITLECHECK, Tess" in html
