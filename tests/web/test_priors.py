"""The review page's priors: the patient's earlier studies, their AI results and reviews, audited."""

import datetime

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from inference.models import Review, ReviewDecision
from inference.selectors import PRIORS_SHOWN
from inference.study_status import study_refresh_status
from tests.factories import PatientFactory, StudyFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = pytest.mark.django_db


def day(n: int) -> datetime.date:
    return datetime.date(2026, 1, 1) + datetime.timedelta(days=n)


@pytest.fixture
def history(radiologist_user):
    """A study being read, a reviewed prior and an unreviewed one, a later study and another patient's."""
    model = make_aimodel()
    patient = PatientFactory(family_name="Okafor", given_name="Ada")
    current = StudyFactory(patient=patient, accession_number="ACC-NOW", study_date=day(60))
    make_prediction(make_image(current, name="now.png"), model)
    study_refresh_status(study_id=current.id)
    reviewed = StudyFactory(patient=patient, accession_number="ACC-LAST-MONTH", study_date=day(30), modality="CR")
    prediction = make_prediction(make_image(reviewed, name="month.png"), model, label="pneumonia", confidence=0.83)
    Review.objects.create(
        prediction=prediction,
        decision=ReviewDecision.OVERRIDE,
        final_label="normal",
        comment="Atelectasis, not pneumonia.",
        reviewer=radiologist_user,
    )
    older = StudyFactory(patient=patient, accession_number="ACC-LAST-YEAR", study_date=day(-300))
    make_prediction(make_image(older, name="year.png"), make_aimodel(version="1.1.0"), label="normal", confidence=0.71)
    StudyFactory(patient=patient, accession_number="ACC-LATER", study_date=day(90))
    StudyFactory(accession_number="ACC-SOMEONE-ELSE", study_date=day(10))
    return {"current": current, "reviewed": reviewed, "older": older, "patient": patient}


def test_the_panel_lists_earlier_studies_with_ai_results_and_reviews(radiologist_client, history):
    response = radiologist_client.get(reverse("pages:review-priors", args=[history["current"].id]))
    assert response.status_code == 200
    html = response.content.decode()
    assert [s.accession_number for s in response.context["priors"].studies] == ["ACC-LAST-MONTH", "ACC-LAST-YEAR"]
    for absent in ("ACC-NOW", "ACC-LATER", "ACC-SOMEONE-ELSE"):
        assert absent not in html
    assert html.index("ACC-LAST-MONTH") < html.index("ACC-LAST-YEAR")
    assert "2026-01-31 · Computed radiography (X-ray) · Chest" in html
    # Each AI opinion with its confidence and model version, the notice, and the decision taken.
    assert "Confidence 83.0%" in html and "cxr-pneumonia v1.2.0" in html
    assert "Confidence 71.0%" in html and "cxr-pneumonia v1.1.0" in html
    assert "AI second opinion — not a diagnosis." in html
    assert "<strong>Override</strong> — final label <strong>normal</strong>" in html
    assert "Atelectasis, not pneumonia." in html
    # Every prior image can be put next to the current one, rendered by the display URL.
    image = history["reviewed"].images.get()
    assert f'data-compare-url="{reverse("pages:image-display", args=[image.id])}"' in html
    assert "All studies of" not in html  # nothing beyond these two


def test_a_long_history_is_bounded_with_a_link_to_the_patient_page(radiologist_client):
    patient = PatientFactory()
    current = StudyFactory(patient=patient, study_date=day(100))
    for n in range(PRIORS_SHOWN + 2):
        StudyFactory(patient=patient, study_date=day(n))
    html = radiologist_client.get(reverse("pages:review-priors", args=[current.id])).content.decode()
    assert html.count('class="prior"') == PRIORS_SHOWN
    assert f'href="{reverse("pages:patient-detail", args=[patient.id])}"' in html


def test_no_priors_says_so(radiologist_client):
    study = StudyFactory()
    response = radiologist_client.get(reverse("pages:review-priors", args=[study.id]))
    assert "No earlier studies of" in response.content.decode()


def test_loading_the_priors_is_audited_for_the_patient_and_each_study_shown(
    radiologist_client, radiologist_user, history
):
    radiologist_client.get(reverse("pages:review-priors", args=[history["current"].id]))
    rows = AuditEvent.objects.filter(actor=radiologist_user, interface="ui").order_by("pk")
    assert list(rows.values_list("action", "object_type", "object_id", "patient_id", "detail")) == [
        ("read", "patients.patient", str(history["patient"].id), history["patient"].id, "priors"),
        ("read", "imaging.study", str(history["reviewed"].id), history["patient"].id, "priors"),
        ("read", "imaging.study", str(history["older"].id), history["patient"].id, "priors"),
    ]


def test_the_priors_follow_the_patient_read_rule(client_for, staff_user, roleless_user, client, history):
    url = reverse("pages:review-priors", args=[history["current"].id])
    assert client_for(staff_user).get(url).status_code == 200
    assert client_for(roleless_user).get(url).status_code == 403
    assert client.get(url).status_code == 302
    assert AuditEvent.objects.filter(actor=roleless_user).count() == 0


def test_an_unknown_study_has_no_priors(radiologist_client):
    study = StudyFactory()
    url = reverse("pages:review-priors", args=[study.id]).replace(str(study.id), "00000000-0000-4000-8000-000000000000")
    assert radiologist_client.get(url).status_code == 404


def test_the_review_page_links_the_patient_and_offers_the_priors(radiologist_client, history):
    html = radiologist_client.get(reverse("pages:review", args=[history["current"].id])).content.decode()
    patient_url = reverse("pages:patient-detail", args=[history["patient"].id])
    assert f'<a href="{patient_url}">{history["patient"].display_name}</a>' in html
    assert 'data-priors-toggle aria-controls="priors-panel"' in html
    assert f'data-priors-url="{reverse("pages:review-priors", args=[history["current"].id])}"' in html
    assert "<dt><kbd>p</kbd></dt><dd>Prior studies of this patient" in html
    assert "window presets for both" in html
    assert "js/priors.js" in html
    # The priors are read only when the panel is opened, not with the page.
    assert "ACC-LAST-MONTH" not in html
