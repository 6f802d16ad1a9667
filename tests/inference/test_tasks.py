"""The tasks, run in-process: the sweeper's recovery and what it sends again."""

import datetime

import pytest
from django.test import override_settings
from django.utils import timezone

from imaging.intake import image_upload
from imaging.models import StudyStatus
from inference.claims import predictions_claim
from inference.models import Prediction, PredictionStatus
from inference.tasks import sweep
from tests.factories import StudyFactory
from tests.support.predictions import succeed

pytestmark = pytest.mark.django_db


class TestSweeper:
    @pytest.fixture
    def prediction(self, tiny_model, sample_image_bytes):
        image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).image
        return image.predictions.get()

    def test_requeues_a_prediction_left_running_by_a_dead_worker(self, prediction):
        predictions_claim(prediction_id=prediction.id)
        later = timezone.now() + datetime.timedelta(hours=1)
        stats = sweep(now=later)
        prediction.refresh_from_db()
        assert stats["requeued"] == 1 and stats["resent"] == 1
        assert prediction.status == PredictionStatus.QUEUED and prediction.claim_token is None

    @override_settings(MEDPORTAL_MAX_ATTEMPTS=2)
    def test_fails_with_the_reason_after_the_last_attempt(self, prediction):
        later = timezone.now() + datetime.timedelta(hours=1)
        for _ in range(2):
            predictions_claim(prediction_id=prediction.id)
            sweep(now=later)
        prediction.refresh_from_db()
        assert prediction.status == PredictionStatus.FAILED
        assert "No result after 2 attempts" in prediction.error
        prediction.image.study.refresh_from_db()
        assert prediction.image.study.status == StudyStatus.AI_DONE

    def test_leaves_fresh_work_alone(self, prediction):
        assert sweep() == {"resent": 0, "requeued": 0, "failed": 0, "heatmaps": 0}


class TestSweeperHeatmaps:
    def test_resends_heatmap_work_lost_with_the_broker_within_the_window(
        self, tiny_model, sample_image_bytes, monkeypatch
    ):
        image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).image
        prediction = succeed(image.predictions.get())
        finished = timezone.now()
        Prediction.objects.filter(id=prediction.id).update(finished_at=finished)
        sent = []
        monkeypatch.setattr(
            "inference.tasks.prediction_heatmaps.apply_async", lambda **kwargs: sent.append(kwargs["kwargs"])
        )

        assert sweep(now=finished)["heatmaps"] == 0  # too fresh: its task is still on its way
        assert sweep(now=finished + datetime.timedelta(minutes=5))["heatmaps"] == 1
        assert sent == [{"prediction_ids": [str(prediction.id)]}]
        assert sweep(now=finished + datetime.timedelta(days=2))["heatmaps"] == 0
