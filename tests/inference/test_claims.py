"""The worker's side of predictions: claims and results."""

import threading
import uuid

import pytest
from django.db import connection, connections, transaction

from imaging.intake import image_upload
from imaging.models import Study, StudyStatus
from inference.claims import predictions_claim, predictions_claim_next, predictions_record_successes
from inference.models import AIModel, Prediction, PredictionStatus
from inference.services import aimodel_register
from tests.conftest import tiny_card
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db


def register(tiny_model_file, **card):
    return aimodel_register(weights_path=tiny_model_file, card=tiny_card(**card))


class TestClaim:
    def test_claims_only_queued_rows_of_one_model_up_to_the_batch_size(self, tiny_model_file, sample_image_bytes):
        register(tiny_model_file, name="chest-a")
        register(tiny_model_file, name="chest-b")
        study = StudyFactory()
        for name in ["cxr-normal-1.png", "cxr-normal-2.png", "cxr-pneumonia-1.png"]:
            image_upload(study=study, data=sample_image_bytes(name))
        first = Prediction.objects.filter(model__name="chest-a").first()

        claim = predictions_claim(prediction_id=first.id, batch_size=2)

        assert len(claim.predictions) == 2 and claim.predictions[0].model.name == "chest-a"
        assert {p.status for p in claim.predictions} == {PredictionStatus.RUNNING}
        assert all(p.attempts == 1 and p.claim_token == claim.token for p in claim.predictions)
        assert predictions_claim(prediction_id=first.id) is None  # a second delivery finds nothing

    def test_claim_next_takes_the_most_urgent_queued_rows_of_that_model(self, tiny_model, sample_image_bytes):
        routine, urgent = StudyFactory(priority=3), StudyFactory(priority=1)
        image_upload(study=routine, data=sample_image_bytes("cxr-normal-1.png"))
        image_upload(study=urgent, data=sample_image_bytes("cxr-normal-2.png"))
        image_upload(study=routine, data=sample_image_bytes("cxr-pneumonia-1.png"))

        claim = predictions_claim_next(model_id=tiny_model.id, batch_size=1)
        assert [p.image.study_id for p in claim.predictions] == [urgent.id]
        rest = predictions_claim_next(model_id=tiny_model.id, batch_size=5)
        assert len(rest.predictions) == 2 and rest.token != claim.token
        assert predictions_claim_next(model_id=tiny_model.id) is None


class TestBatchWrites:
    def test_a_batch_is_written_only_where_this_claim_still_holds(self, tiny_model, sample_image_bytes):
        study = StudyFactory()
        for name in ["cxr-normal-1.png", "cxr-normal-2.png", "cxr-pneumonia-1.png"]:
            image_upload(study=study, data=sample_image_bytes(name))
        claim = predictions_claim(prediction_id=Prediction.objects.first().id)
        lost = claim.predictions[1]
        # The sweeper gave this one back to the queue meanwhile.
        Prediction.objects.filter(id=lost.id).update(status=PredictionStatus.QUEUED, claim_token=None)

        written = predictions_record_successes(
            token=claim.token, results=[(p, [0.25, 0.75]) for p in claim.predictions], inference_ms=2.0
        )

        assert {p.id for p in written} == {p.id for p in claim.predictions} - {lost.id}
        for prediction in Prediction.objects.exclude(id=lost.id):
            assert prediction.status == PredictionStatus.SUCCEEDED and prediction.label == "pneumonia"
            assert prediction.confidence == pytest.approx(0.75) and prediction.is_abnormal is True
            assert prediction.probabilities == {"normal": 0.25, "pneumonia": 0.75} and prediction.finished_at
        assert Prediction.objects.get(id=lost.id).status == PredictionStatus.QUEUED

    def test_the_last_results_of_a_study_and_its_status_commit_together(self, tiny_model, sample_image_bytes):
        study = StudyFactory()
        for name in ["cxr-normal-1.png", "cxr-pneumonia-1.png"]:
            image_upload(study=study, data=sample_image_bytes(name))
        claim = predictions_claim(prediction_id=Prediction.objects.first().id)

        predictions_record_successes(
            token=claim.token, results=[(p, [0.25, 0.75]) for p in claim.predictions], inference_ms=2.0
        )

        # No separate refresh afterwards: a page that sees both results also sees the study done.
        study.refresh_from_db()
        assert study.status == StudyStatus.AI_DONE and study.ai_completed_at


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_claim_does_not_wait_for_or_skip_an_upload_holding_the_study(tiny_model, sample_image_bytes):
    """An upload holds its study's row while it commits; the worker must neither skip that
    study's queued work nor lock the study itself."""
    # This test commits, so a worker of the session could take the prediction first: no worker
    # consumes this queue.
    AIModel.objects.filter(id=tiny_model.id).update(queue=f"unconsumed-{uuid.uuid4().hex[:8]}")
    study = StudyFactory()
    image_upload(study=study, data=sample_image_bytes("cxr-normal-1.png"))
    locked, release = threading.Event(), threading.Event()

    def upload_in_flight():
        with transaction.atomic():
            Study.objects.select_for_update().get(id=study.id)
            locked.set()
            release.wait(10)
        connections.close_all()

    holder = threading.Thread(target=upload_in_flight)
    holder.start()
    try:
        assert locked.wait(10)
        claim = predictions_claim_next(model_id=tiny_model.id)
    finally:
        release.set()
        holder.join()
    assert claim is not None and [p.image.study_id for p in claim.predictions] == [study.id]
