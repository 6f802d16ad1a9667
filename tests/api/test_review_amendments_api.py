"""A review's history over the API: every reader sees it, only the radiologist who made the review amends it."""

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent, AuditInterface
from inference.models import Review, ReviewAmendment
from inference.services import review_create
from tests.api.helpers import make_prediction
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

AMEND = {"decision": "override", "final_label": "normal", "reason": "Overlapping soft tissue."}


@pytest.fixture
def review(user_for_role):
    prediction = make_prediction(label="pneumonia")
    return review_create(prediction=prediction, reviewer=user_for_role("radiologist"), decision="agree")


def _url(review: Review) -> str:
    return f"/api/v1/reviews/{review.id}/amendments/"


def test_the_reviewer_amends_and_the_earlier_decision_is_kept(client_for_role, user_for_role, review):
    client = client_for_role("radiologist")

    response = client.post(_url(review), AMEND, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["decision"], body["final_label"]) == ("override", "normal")
    [earlier] = body["amendments"]
    assert (earlier["previous_decision"], earlier["previous_final_label"], earlier["reason"]) == (
        "agree",
        "pneumonia",
        "Overlapping soft tissue.",
    )
    assert earlier["amended_by"] == user_for_role("radiologist").username
    assert body["amendments_url"] == f"http://testserver{_url(review)}"
    event = AuditEvent.objects.get(action=AuditAction.UPDATE)
    assert (event.interface, event.object_id, event.detail) == (
        AuditInterface.API,
        str(review.id),
        "review amended: Overlapping soft tissue.",
    )
    assert event.patient_id == review.prediction.image.study.patient_id

    listed = client_for_role("staff").get(_url(review))
    assert listed.status_code == 200
    assert [row["reason"] for row in listed.json()] == ["Overlapping soft tissue."]
    read = AuditEvent.objects.filter(action=AuditAction.READ, detail="amendments").get()
    assert (read.object_id, read.actor) == (str(review.id), user_for_role("staff"))
    detail = client_for_role("staff").get(f"/api/v1/reviews/{review.id}/").json()
    assert [row["previous_final_label"] for row in detail["amendments"]] == ["pneumonia"]


@pytest.mark.parametrize("who", ["staff", "other radiologist", "admin"])
def test_nobody_else_amends_a_review(client_for_role, review, who):
    if who == "other radiologist":
        client = APIClient()
        client.force_login(UserFactory(role="radiologist"))
    else:
        client = client_for_role(who)  # an administrator holds every role, but did not write the review

    response = client.post(_url(review), AMEND, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["status"] == 403
    review.refresh_from_db()
    assert review.decision == "agree" and not ReviewAmendment.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.UPDATE).exists()


def test_an_amendment_needs_a_reason_and_a_real_override(client_for_role, review):
    client = client_for_role("radiologist")

    no_reason = client.post(_url(review), {"decision": "override", "final_label": "normal"}, format="json")
    same_label = client.post(_url(review), {**AMEND, "final_label": "pneumonia"}, format="json")

    assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"]["fields"]
    assert same_label.status_code == 400
    assert same_label.json()["error"]["fields"]["final_label"] == [
        "Choose a different label than the AI's to override, or choose Agree."
    ]
    assert not ReviewAmendment.objects.exists()


def test_the_schema_describes_the_history_and_the_amendment():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = schema["paths"]["/api/v1/reviews/{review_id}/amendments/"]
    assert set(operations) >= {"get", "post"}
    assert operations["post"]["summary"] == "Amend your own review"
    assert {"201", "403"} <= set(operations["post"]["responses"])
    body = operations["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "reason" in schema["components"]["schemas"][body]["required"]
    review = schema["components"]["schemas"]["ReviewOutput"]["properties"]
    assert review["amendments"]["type"] == "array" and "amendments_url" in review
