import pytest

from inference.models import PredictionStatus
from tests.api.helpers import make_image, make_prediction

pytestmark = pytest.mark.django_db


def test_prediction_carries_confidence_model_version_and_second_opinion(client_for_role):
    prediction = make_prediction()
    body = client_for_role("radiologist").get(f"/api/v1/predictions/{prediction.id}/").json()
    assert body["label"] == "pneumonia"
    assert body["confidence"] == pytest.approx(0.91)
    assert body["probabilities"] == {"normal": pytest.approx(0.09), "pneumonia": pytest.approx(0.91)}
    assert body["model"]["name"] == "cxr-test"
    assert body["model"]["version"] == "1.0.0"
    assert body["status"] == "succeeded"
    assert body["is_second_opinion"] is True
    assert body["disclaimer"]
    assert body["study"] == str(prediction.image.study_id)
    assert body["review"] is None


def test_failed_prediction_shows_its_error(client_for_role):
    prediction = make_prediction(status=PredictionStatus.FAILED)
    body = client_for_role("staff").get(f"/api/v1/predictions/{prediction.id}/").json()
    assert body["status"] == "failed"
    assert body["error"] == "The image could not be read."
    assert body["confidence"] is None


def test_list_filters_by_study_image_and_status(client_for_role):
    first = make_prediction()
    other_image = make_image()
    failed = make_prediction(image=other_image, status=PredictionStatus.FAILED)
    client = client_for_role("staff")

    def ids(**params):
        return {row["id"] for row in client.get("/api/v1/predictions/", params).json()["results"]}

    assert ids() == {str(first.id), str(failed.id)}
    assert ids(study=str(first.image.study_id)) == {str(first.id)}
    assert ids(image=str(other_image.id)) == {str(failed.id)}
    assert ids(status="failed") == {str(failed.id)}
    assert client.get("/api/v1/predictions/", {"status": "bogus"}).status_code == 400


@pytest.mark.parametrize(("role", "expected"), [("anonymous", 401), ("roleless", 403), ("admin", 200)])
def test_reading_predictions_needs_a_clinical_role(client_for_role, role, expected):
    prediction = make_prediction()
    assert client_for_role(role).get("/api/v1/predictions/").status_code == expected
    assert client_for_role(role).get(f"/api/v1/predictions/{prediction.id}/").status_code == expected
