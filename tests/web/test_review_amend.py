"""A radiologist corrects their own review; the earlier decision stays in the history and the audit trail."""

import re
from html import unescape

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from inference.models import Review, ReviewAmendment
from inference.services import review_amend, review_create
from inference.study_status import study_refresh_status
from tests.factories import StudyFactory, UserFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = pytest.mark.django_db


def _reviewed(reviewer, **review):
    study = StudyFactory()
    prediction = make_prediction(make_image(study), make_aimodel(), label="pneumonia", confidence=0.9)
    review_create(prediction=prediction, reviewer=reviewer, **({"decision": "agree"} | review))
    study_refresh_status(study_id=study.id)
    return study, prediction, Review.objects.get(prediction=prediction)


def test_amend_keeps_every_earlier_decision_with_its_reason(radiologist_user):
    _, _, review = _reviewed(radiologist_user, comment="Clear consolidation.")
    first_time = review.reviewed_at

    review_amend(
        review=review, user=radiologist_user, decision="override", final_label="normal", comment="", reason="Artefact."
    )
    review_amend(review=review, user=radiologist_user, decision="agree", comment="Second look.", reason="Prior CT.")

    review.refresh_from_db()
    assert (review.decision, review.final_label, review.comment) == ("agree", "pneumonia", "Second look.")
    history = list(review.amendments.all())
    assert [(a.previous_decision, a.previous_final_label, a.previous_comment, a.reason) for a in history] == [
        ("agree", "pneumonia", "Clear consolidation.", "Artefact."),
        ("override", "normal", "", "Prior CT."),
    ]
    assert history[0].previous_reviewed_at == first_time
    assert history[1].previous_reviewed_at == history[0].amended_at


def test_only_the_reviewer_amends_with_a_reason_and_a_real_change(radiologist_user):
    _, _, review = _reviewed(radiologist_user)
    colleague = UserFactory(role="radiologist")
    with pytest.raises(PermissionError):
        review_amend(review=review, user=colleague, decision="override", final_label="normal", reason="Mine now.")
    with pytest.raises(ValidationError, match="reason"):
        review_amend(review=review, user=radiologist_user, decision="override", final_label="normal", reason=" ")
    with pytest.raises(ValidationError, match="Nothing changed"):
        review_amend(review=review, user=radiologist_user, decision="agree", reason="Just checking.")
    with pytest.raises(ValidationError):
        review_amend(review=review, user=radiologist_user, decision="override", final_label="pneumonia", reason="x")
    assert not ReviewAmendment.objects.exists()


def test_amend_on_the_review_page_shows_the_history_and_is_audited(radiologist_client, radiologist_user):
    study, prediction, review = _reviewed(radiologist_user)
    url = reverse("pages:review", args=[study.id])
    page = radiologist_client.get(url, {"prediction": prediction.id}).content.decode()
    assert "Amend your review" in page and 'name="amend-reason"' in page

    missing = radiologist_client.post(
        url, {"prediction": prediction.id, "amend": "1", "amend-decision": "override", "amend-final_label": "normal"}
    )
    html = missing.content.decode()
    assert "Give a reason for the amendment." in html and 'id="id_amend-reason_error"' in html
    assert not ReviewAmendment.objects.exists()

    response = radiologist_client.post(
        url,
        {
            "prediction": prediction.id,
            "amend": "1",
            "amend-decision": "override",
            "amend-final_label": "normal",
            "amend-reason": "Overlapping soft tissue.",
        },
    )
    assert response.status_code == 302
    page = radiologist_client.get(response.url).content.decode()
    assert "Earlier decisions" in page and "Overlapping soft tissue." in page
    assert "final label <strong>normal</strong>" in page
    event = AuditEvent.objects.get(action=AuditAction.UPDATE)
    assert event.detail == "review amended: Overlapping soft tissue."
    report = radiologist_client.get(reverse("pages:study-report", args=[study.id])).content.decode()
    assert "Earlier decisions" in report and "Overlapping soft tissue." in report


def test_a_colleague_sees_the_review_but_cannot_amend_it(client_for, radiologist_user):
    study, prediction, _ = _reviewed(radiologist_user)
    colleague = client_for(UserFactory(role="radiologist"))
    url = reverse("pages:review", args=[study.id])
    assert "Amend your review" not in colleague.get(url, {"prediction": prediction.id}).content.decode()
    response = colleague.post(
        url,
        {
            "prediction": prediction.id,
            "amend": "1",
            "amend-decision": "override",
            "amend-final_label": "normal",
            "amend-reason": "Mine now.",
        },
    )
    assert response.status_code == 403
    assert not ReviewAmendment.objects.exists()


def test_amend_sent_by_the_page_script_answers_where_to_show_it(radiologist_client, radiologist_user):
    study, prediction, review = _reviewed(radiologist_user)
    url = reverse("pages:review", args=[study.id])
    form = {"prediction": prediction.id, "amend": "1", "worklist_query": "modality=DX"}

    answer = radiologist_client.post(
        url,
        {**form, "amend-decision": "override", "amend-final_label": "normal", "amend-reason": "Artefact."},
        HTTP_ACCEPT="application/json",
    ).json()

    assert answer["ok"] is True and answer["message"] == "Review amended: override, final label normal."
    assert answer["next"] == f"{url}?modality=DX&prediction={prediction.id}"
    review.refresh_from_db()
    assert review.final_label == "normal" and review.amendments.get().reason == "Artefact."


@pytest.mark.parametrize(
    ("fields", "control", "message"),
    [
        ({"amend-final_label": "normal", "amend-reason": "x"}, "id_amend-decision", "Choose Agree or Override."),
        (
            {"amend-decision": "override", "amend-final_label": "normal"},
            "id_amend-reason",
            "Give a reason for the amendment.",
        ),
        (
            {"amend-decision": "override", "amend-final_label": "pneumonia", "amend-reason": "x"},
            "id_amend-final_label",
            "Choose a different label than the AI's to override, or choose Agree.",
        ),
    ],
)
def test_amend_errors_are_specific_and_tied_to_their_control(
    radiologist_client, radiologist_user, fields, control, message
):
    study, prediction, _ = _reviewed(radiologist_user)

    response = radiologist_client.post(
        reverse("pages:review", args=[study.id]),
        {"prediction": prediction.id, "amend": "1", **fields},
        HTTP_ACCEPT="application/json",
    )

    # The page comes back (HTML) with the error next to its control, which names it.
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    error = re.search(rf'<div class="field__error" id="{control}_error">(.*?)</div>', html, re.S)
    assert error and message in unescape(error.group(1))
    assert re.search(rf'aria-describedby="[^"]*{re.escape(control)}_error', html)
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    for reference in re.findall(r'aria-describedby="([^"]+)"', html):
        assert set(reference.split()) <= ids, reference
    assert '<details class="amend" open>' in html
    assert not ReviewAmendment.objects.exists()
