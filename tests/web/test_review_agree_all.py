"""Agree with all AI second opinions of a study from the review page: one confirmation, one review
each, then the next study of the same filtered worklist."""

import re

import pytest
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from inference.models import PredictionStatus, Review
from inference.study_status import study_refresh_status
from tests.factories import StudyFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = pytest.mark.django_db

REFUSED = "Not run: the image is 16×12 pixels, smaller than the 28×28 this model reads."


@pytest.fixture
def worklist():
    """A DX study with two finished opinions and one the model refused, a STAT CR study that the
    filter leaves out, and the next DX study."""
    model = make_aimodel()
    study = StudyFactory(accession_number="ACC-ALL", modality="DX", priority=2)
    done = [make_prediction(make_image(study, name=f"img-{n}.png"), model, label="pneumonia") for n in (1, 2)]
    make_prediction(make_image(study, name="tiny.png"), model, status=PredictionStatus.FAILED, error=REFUSED)
    stat_cr = StudyFactory(accession_number="ACC-CR", modality="CR", priority=1)
    following = StudyFactory(accession_number="ACC-NEXT", modality="DX", priority=3)
    for other in (stat_cr, following):
        make_prediction(make_image(other, name="other.png"), model, label="normal")
    for s in (study, stat_cr, following):
        study_refresh_status(study_id=s.id)
    return study, done, following


def test_the_review_page_offers_it_with_what_it_records_and_leaves(radiologist_client, worklist):
    study, done, _ = worklist

    html = radiologist_client.get(reverse("pages:review", args=[study.id]), {"modality": "DX"}).content.decode()

    assert "Agree with all 2 AI second opinions of this study…" in html
    assert 'aria-keyshortcuts="Shift+A"' in html and "<kbd>Shift</kbd>+<kbd>A</kbd>" in html
    dialog = re.search(r"<dialog[^>]*data-agree-all-dialog.*?</dialog>", html, re.S).group(0)
    assert 'aria-labelledby="agree-all-title"' in dialog and 'id="agree-all-title"' in dialog
    assert re.findall(r'name="predictions" value="([^"]+)"', dialog) == [str(p.id) for p in done]
    assert f"tiny.png — Chest X-ray pneumonia: {REFUSED}" in dialog
    assert 'name="worklist_query" value="modality=DX"' in dialog


def test_without_javascript_a_page_confirms_and_is_audited(radiologist_client, radiologist_user, worklist):
    study, done, _ = worklist
    url = reverse("pages:review-agree-all", args=[study.id])

    html = radiologist_client.get(url, {"modality": "DX"}).content.decode()

    assert "Agree with all AI second opinions of ACC-ALL?" in html
    assert re.findall(r'name="predictions" value="([^"]+)"', html) == [str(p.id) for p in done]
    assert not Review.objects.exists()
    event = AuditEvent.objects.get(path=url)
    assert (event.action, event.detail, event.actor, event.patient_id) == (
        AuditAction.READ,
        "agree with all",
        radiologist_user,
        study.patient_id,
    )


def test_confirming_records_one_review_each_and_opens_the_next_study_of_the_filtered_worklist(
    radiologist_client, radiologist_user, worklist
):
    study, done, following = worklist
    url = reverse("pages:review-agree-all", args=[study.id])
    form = {"predictions": [str(p.id) for p in done], "worklist_query": "modality=DX"}

    response = radiologist_client.post(url, form)

    assert response.status_code == 302
    assert response.url == reverse("pages:review", args=[following.id]) + "?modality=DX"
    reviews = Review.objects.filter(prediction__image__study=study)
    assert {(r.prediction_id, r.decision, r.final_label, r.reviewer) for r in reviews} == {
        (p.id, "agree", "pneumonia", radiologist_user) for p in done
    }
    created = AuditEvent.objects.filter(action=AuditAction.CREATE, path=url)
    assert sorted(created.values_list("object_id", "detail", "patient_id")) == sorted(
        (str(r.id), "agree with all", study.patient_id) for r in reviews
    )
    page = radiologist_client.get(response.url).content.decode()
    assert "Agreed with 2 AI second opinions of ACC-ALL." in page
    assert f"Not reviewed: tiny.png (Chest X-ray pneumonia): {REFUSED}" in page

    # Sent twice (a double click, a retry): nothing new is recorded.
    again = radiologist_client.post(url, form, HTTP_ACCEPT="application/json")
    assert again.json()["ok"] is True
    assert again.json()["next"] == reverse("pages:review", args=[following.id]) + "?modality=DX"
    assert Review.objects.filter(prediction__image__study=study).count() == 2
    assert AuditEvent.objects.filter(action=AuditAction.CREATE).count() == 2


def test_an_opinion_not_in_the_confirmation_is_left_to_read(radiologist_client, worklist):
    study, done, _ = worklist
    url = reverse("pages:review-agree-all", args=[study.id])

    response = radiologist_client.post(url, {"predictions": [str(done[0].id), "not-a-uuid"]})

    assert Review.objects.filter(prediction__image__study=study).count() == 1
    assert response.url.startswith(reverse("pages:review", args=[study.id]))  # the other one still awaits


def test_staff_cannot_agree(staff_client, worklist):
    study, done, _ = worklist
    url = reverse("pages:review-agree-all", args=[study.id])
    assert staff_client.get(url).status_code == 403
    assert staff_client.post(url, {"predictions": [str(p.id) for p in done]}).status_code == 403
    assert not Review.objects.exists()
