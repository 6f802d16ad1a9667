import datetime
import uuid

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.utils import timezone

from imaging.intake import image_upload
from inference.models import Prediction, PredictionStatus
from inference.selectors import queue_status
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

NAMES = ["cxr-normal-1.png", "cxr-normal-2.png", "cxr-pneumonia-1.png", "cxr-pneumonia-2.png"]


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


def upload_all(sample_image_bytes):
    study = StudyFactory()
    return [image_upload(study=study, data=sample_image_bytes(n)).image.predictions.get() for n in NAMES]


@override_settings(MEDPORTAL_QUEUE_SOFT_LIMIT=3, MEDPORTAL_ASSUMED_THROUGHPUT=2.0)
def test_depth_and_wait_use_the_assumed_pace_before_any_work_is_done(tiny_model, sample_image_bytes):
    assert queue_status().depth == 0 and queue_status().expected_wait_seconds == 0
    upload_all(sample_image_bytes)

    status = queue_status(queue=tiny_model.queue)

    assert (status.queued, status.running, status.depth) == (4, 0, 4)
    assert not status.measured and status.expected_wait_seconds == 2.0
    assert status.over_limit and "4 images waiting" in status.message
    assert queue_status(queue="another-queue").depth == 0


def test_the_pace_is_measured_from_recent_batches_busy_time(tiny_model, sample_image_bytes):
    predictions = []
    for _ in range(3):
        predictions += upload_all(sample_image_bytes)
    start = timezone.now()
    done, waiting = predictions[:10], predictions[10:]
    # Two batches of five, each took one second on one worker: 5 images/s while busy.
    for batch, offset in ((done[:5], 0), (done[5:], 60)):
        token = uuid.uuid4()
        Prediction.objects.filter(id__in=[p.id for p in batch]).update(
            status=PredictionStatus.SUCCEEDED,
            label="normal",
            confidence=0.9,
            probabilities={"normal": 0.9, "pneumonia": 0.1},
            claim_token=token,
            worker_host="gpu-1:100",
            started_at=start + datetime.timedelta(seconds=offset),
            finished_at=start + datetime.timedelta(seconds=offset + 1),
        )

    status = queue_status()

    assert status.measured and status.throughput == pytest.approx(5.0)
    assert status.depth == len(waiting) == 2 and status.expected_wait_seconds == pytest.approx(0.4)
    assert not status.over_limit and status.message == ""


def test_upload_response_and_prediction_show_the_expected_wait(tiny_model, api_client, staff_user, sample_image_bytes):
    api_client.force_authenticate(staff_user)
    study = StudyFactory()
    response = api_client.post(
        f"/api/v1/studies/{study.id}/images/",
        {"file": SimpleUploadedFile("a.png", sample_image_bytes("cxr-normal-1.png"), content_type="image/png")},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["queue"]["depth"] == 1 and body["queue"]["over_limit"] is False
    [prediction] = body["images"][0]["predictions"]
    assert prediction["status"] == "queued" and prediction["expected_wait_seconds"] > 0

    detail = api_client.get(f"/api/v1/predictions/{prediction['id']}/").json()
    assert detail["expected_wait_seconds"] == prediction["expected_wait_seconds"]


@override_settings(MEDPORTAL_QUEUE_SOFT_LIMIT=1)
def test_over_the_limit_uploads_are_still_stored_and_told_the_wait(
    tiny_model, api_client, staff_user, sample_image_bytes
):
    api_client.force_authenticate(staff_user)
    study = StudyFactory()
    files = [SimpleUploadedFile(n, sample_image_bytes(n), content_type="image/png") for n in NAMES[:3]]
    response = api_client.post(f"/api/v1/studies/{study.id}/images/", {"file": files}, format="multipart")

    assert response.status_code == 201, response.content
    queue = response.json()["queue"]
    assert queue["depth"] == 3 and queue["over_limit"] is True
    assert "3 images waiting" in queue["message"] and "Uploads are stored as usual" in queue["message"]
    assert Prediction.objects.filter(image__study=study, status=PredictionStatus.QUEUED).count() == 3
