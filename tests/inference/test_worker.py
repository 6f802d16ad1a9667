"""Predictions made by a real `celery worker` process through the real broker."""

import datetime

import pytest

from imaging.intake import image_upload
from imaging.models import StudyStatus
from inference.models import Prediction, PredictionStatus
from inference.tasks import sweep
from tests.factories import StudyFactory
from tests.support.workers import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def finished(prediction_ids):
    def check():
        rows = Prediction.objects.filter(id__in=prediction_ids, status__in=["succeeded", "failed"])
        return rows.count() == len(prediction_ids)

    return check


def test_worker_writes_back_every_prediction_of_a_burst(celery_worker, tiny_model, sample_image_bytes):
    study = StudyFactory()
    names = ["cxr-normal-1.png", "cxr-normal-2.png", "cxr-pneumonia-1.png", "cxr-pneumonia-2.png"]
    ids = [image_upload(study=study, data=sample_image_bytes(n)).image.predictions.get().id for n in names]

    wait_for(finished(ids), message=f"Predictions did not finish:\n{celery_worker.log()[-3000:]}")

    assert set(Prediction.objects.values_list("status", flat=True)) == {PredictionStatus.SUCCEEDED}
    assert all(p.worker_host and p.attempts == 1 for p in Prediction.objects.all())
    # The study's status follows its predictions right after the batch is written.
    wait_for(lambda: study.__class__.objects.get(id=study.id).status == StudyStatus.AI_DONE)


def test_a_prediction_whose_task_was_lost_is_recovered_by_the_sweeper(
    celery_worker, tiny_model, sample_image_bytes, monkeypatch
):
    # The broker was unreachable at upload time: the prediction is queued but no task exists.
    def unreachable(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr("inference.tasks.prediction_run.apply_async", unreachable)
    image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).image
    prediction = image.predictions.get()
    monkeypatch.undo()
    # The upload stood; the failed send is on record for the sweeper.
    assert prediction.status == PredictionStatus.QUEUED
    assert prediction.enqueued_at is None

    assert sweep(now=prediction.queued_at + datetime.timedelta(minutes=10))["resent"] == 1

    wait_for(finished([prediction.id]), message=celery_worker.log()[-3000:])
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.SUCCEEDED
