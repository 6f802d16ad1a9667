import datetime
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from accounts.roles import Role
from imaging.models import Study, StudyStatus
from imaging.services import image_upload
from inference.models import AIModel, AIModelStatus, Prediction, PredictionStatus, ReviewDecision
from inference.selectors import aimodels_for_study
from inference.services import (
    aimodel_activate,
    aimodel_register,
    aimodel_retire,
    predictions_claim,
    predictions_rerun,
    predictions_sweep,
    review_create,
)
from tests.conftest import tiny_card
from tests.factories import StudyFactory, UserFactory

pytestmark = pytest.mark.django_db


def register(tiny_model_file, **card):
    return aimodel_register(weights_path=tiny_model_file, card=tiny_card(**card))


class TestRegistry:
    def test_register_is_idempotent_for_the_same_weights(self, tiny_model_file):
        first = register(tiny_model_file)
        again = register(tiny_model_file)
        assert first.id == again.id and AIModel.objects.count() == 1
        assert first.status == AIModelStatus.ACTIVE and len(first.weights_sha256) == 64

    def test_same_version_with_other_weights_is_refused(self, tiny_model_file, tmp_path):
        from tests.conftest import build_tiny_keras_model

        register(tiny_model_file)
        other = build_tiny_keras_model(tmp_path / "other.keras", size=12)
        with pytest.raises(ValidationError, match="already registered with other weights"):
            aimodel_register(weights_path=other, card=tiny_card())

    def test_a_new_version_becomes_the_active_one_and_old_predictions_keep_theirs(
        self, tiny_model_file, sample_image_bytes
    ):
        old = register(tiny_model_file, version="1.0.0")
        prediction = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).image
        prediction = prediction.predictions.get()
        new = register(tiny_model_file, version="1.1.0")
        old.refresh_from_db()
        assert new.status == AIModelStatus.ACTIVE and old.status == AIModelStatus.RETIRED
        prediction.refresh_from_db()
        assert prediction.model_id == old.id

    def test_the_card_must_name_what_routing_needs(self, tiny_model_file):
        card = tiny_card()
        del card["body_part"]
        with pytest.raises(ValidationError, match="body_part"):
            aimodel_register(weights_path=tiny_model_file, card=card)


class TestRouting:
    def test_routes_by_modality_body_part_and_procedure(self, tiny_model_file):
        chest = register(tiny_model_file, name="chest")
        skin = register(tiny_model_file, name="skin", modalities=["DMS"], body_part="SKIN")
        malaria = register(
            tiny_model_file, name="malaria", modalities=["SM"], body_part="BLOOD", procedure="MALARIA_SCREEN"
        )
        assert aimodels_for_study(study=StudyFactory(modality="DMS", body_part="SKIN")) == [skin]
        assert aimodels_for_study(study=StudyFactory(modality="CR", body_part="CHEST")) == [chest]
        assert aimodels_for_study(study=StudyFactory(modality="CT", body_part="CHEST")) == []
        assert aimodels_for_study(study=StudyFactory(modality="SM", body_part="BLOOD")) == []
        smear = StudyFactory(modality="SM", body_part="BLOOD", procedure="MALARIA_SCREEN")
        assert aimodels_for_study(study=smear) == [malaria]

    def test_two_models_for_one_study_type_both_run(self, tiny_model_file, sample_image_bytes):
        register(tiny_model_file, name="chest-a")
        register(tiny_model_file, name="chest-b")
        image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).image
        assert sorted(image.predictions.values_list("model__name", flat=True)) == ["chest-a", "chest-b"]

    def test_a_retired_model_gets_no_new_predictions(self, tiny_model, sample_image_bytes):
        aimodel_retire(model=tiny_model)
        image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).image
        assert not image.predictions.exists()
        aimodel_activate(model=tiny_model)
        image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-2.png")).image
        assert image.predictions.count() == 1


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
        from inference.services import predictions_claim_next

        routine, urgent = StudyFactory(priority=3), StudyFactory(priority=1)
        image_upload(study=routine, data=sample_image_bytes("cxr-normal-1.png"))
        image_upload(study=urgent, data=sample_image_bytes("cxr-normal-2.png"))
        image_upload(study=routine, data=sample_image_bytes("cxr-pneumonia-1.png"))

        claim = predictions_claim_next(model_id=tiny_model.id, batch_size=1)
        assert [p.image.study_id for p in claim.predictions] == [urgent.id]
        rest = predictions_claim_next(model_id=tiny_model.id, batch_size=5)
        assert len(rest.predictions) == 2 and rest.token != claim.token
        assert predictions_claim_next(model_id=tiny_model.id) is None


class TestSweeper:
    @pytest.fixture
    def prediction(self, tiny_model, sample_image_bytes):
        image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).image
        return image.predictions.get()

    def test_requeues_a_prediction_left_running_by_a_dead_worker(self, prediction):
        predictions_claim(prediction_id=prediction.id)
        later = timezone.now() + datetime.timedelta(hours=1)
        stats = predictions_sweep(now=later)
        prediction.refresh_from_db()
        assert stats["requeued"] == 1 and stats["resent"] == 1
        assert prediction.status == PredictionStatus.QUEUED and prediction.claim_token is None

    @override_settings(MEDPORTAL_MAX_ATTEMPTS=2)
    def test_fails_with_the_reason_after_the_last_attempt(self, prediction):
        later = timezone.now() + datetime.timedelta(hours=1)
        for _ in range(2):
            predictions_claim(prediction_id=prediction.id)
            predictions_sweep(now=later)
        prediction.refresh_from_db()
        assert prediction.status == PredictionStatus.FAILED
        assert "No result after 2 attempts" in prediction.error
        prediction.image.study.refresh_from_db()
        assert prediction.image.study.status == StudyStatus.AI_DONE

    def test_leaves_fresh_work_alone(self, prediction):
        assert predictions_sweep() == {"resent": 0, "requeued": 0, "failed": 0, "heatmaps": 0}


def succeed(prediction, label="pneumonia", confidence=0.8):
    labels = prediction.model.labels
    probabilities = {lab: (confidence if lab == label else (1 - confidence) / (len(labels) - 1)) for lab in labels}
    Prediction.objects.filter(id=prediction.id).update(
        status=PredictionStatus.SUCCEEDED, label=label, confidence=confidence, probabilities=probabilities
    )
    prediction.refresh_from_db()
    return prediction


class TestReview:
    @pytest.fixture
    def prediction(self, tiny_model, sample_image_bytes):
        image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-pneumonia-1.png")).image
        return image.predictions.get()

    def test_agree_records_reviewer_and_moves_the_study_to_reviewed(self, prediction, radiologist_user):
        from inference.services import study_refresh_status

        succeed(prediction)
        study_refresh_status(study_id=prediction.image.study_id)
        review = review_create(prediction=prediction, reviewer=radiologist_user, decision=ReviewDecision.AGREE)
        assert review.final_label == "pneumonia" and review.reviewer == radiologist_user and review.reviewed_at
        prediction.image.study.refresh_from_db()
        assert prediction.image.study.status == StudyStatus.REVIEWED

    def test_override_needs_another_known_label(self, prediction, radiologist_user):
        succeed(prediction)
        with pytest.raises(ValidationError, match="choose Agree"):
            review_create(
                prediction=prediction, reviewer=radiologist_user, decision="override", final_label="pneumonia"
            )
        with pytest.raises(ValidationError, match="Choose one of"):
            review_create(prediction=prediction, reviewer=radiologist_user, decision="override", final_label="cat")
        review = review_create(
            prediction=prediction, reviewer=radiologist_user, decision="override", final_label="normal", comment="ok"
        )
        assert review.final_label == "normal"

    def test_only_radiologists_review_and_only_finished_opinions_once(self, prediction, radiologist_user):
        staff = UserFactory(role=Role.STAFF)
        with pytest.raises(ValidationError, match="finished"):
            review_create(prediction=prediction, reviewer=radiologist_user, decision="agree")
        succeed(prediction)
        with pytest.raises(PermissionError):
            review_create(prediction=prediction, reviewer=staff, decision="agree")
        review_create(prediction=prediction, reviewer=radiologist_user, decision="agree")
        with pytest.raises(ValidationError, match="already been reviewed"):
            review_create(prediction=prediction, reviewer=radiologist_user, decision="agree")


class TestRerun:
    def test_requeues_failed_and_adds_missing_models(self, tiny_model, tiny_model_file, sample_image_bytes):
        image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).image
        failed = image.predictions.get()
        Prediction.objects.filter(id=failed.id).update(status=PredictionStatus.FAILED, error="boom", attempts=3)
        other = register(tiny_model_file, name="chest-b")

        queued = predictions_rerun(images=[image])

        assert {p.model_id for p in queued} == {tiny_model.id, other.id}
        failed.refresh_from_db()
        assert failed.status == PredictionStatus.QUEUED and failed.error == "" and failed.attempts == 0

    def test_skips_images_that_cannot_be_decoded(self, tiny_model, sample_image_bytes):
        image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).image
        image.predictions.all().delete()
        image.analysable, image.not_analysable_reason = False, "JPEG 2000 decoder missing"
        image.save(update_fields=["analysable", "not_analysable_reason"])
        assert predictions_rerun(images=[image]) == []
        assert not image.predictions.exists()


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

        assert predictions_sweep(now=finished)["heatmaps"] == 0  # too fresh: its task is still on its way
        assert predictions_sweep(now=finished + datetime.timedelta(minutes=5))["heatmaps"] == 1
        assert sent == [{"prediction_ids": [str(prediction.id)]}]
        assert predictions_sweep(now=finished + datetime.timedelta(days=2))["heatmaps"] == 0


class TestBatchWrites:
    def test_a_batch_is_written_only_where_this_claim_still_holds(self, tiny_model, sample_image_bytes):
        from inference.services import predictions_record_successes

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
        from inference.services import predictions_record_successes

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

    def test_only_studies_whose_ai_work_settled_are_refreshed(self, tiny_model, sample_image_bytes):
        from inference.services import studies_refresh_after_batch

        done, busy = StudyFactory(), StudyFactory()
        image_upload(study=done, data=sample_image_bytes("cxr-normal-1.png"))
        image_upload(study=busy, data=sample_image_bytes("cxr-normal-1.png"))
        image_upload(study=busy, data=sample_image_bytes("cxr-normal-2.png"))
        succeed(done.images.get().predictions.get())
        succeed(busy.images.first().predictions.get())

        assert studies_refresh_after_batch(study_ids=[done.id, busy.id]) == 1

        done.refresh_from_db()
        busy.refresh_from_db()
        assert done.status == StudyStatus.AI_DONE and busy.status == StudyStatus.AI_PENDING

    def test_statuses_of_many_studies_are_derived_together(self, tiny_model, sample_image_bytes, radiologist_user):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from inference.services import review_create, studies_refresh_status

        received, pending, done, reviewed = (StudyFactory() for _ in range(4))
        image_upload(study=pending, data=sample_image_bytes("cxr-normal-1.png"))
        for study in (done, reviewed):
            image_upload(study=study, data=sample_image_bytes("cxr-normal-2.png"))
        succeed(done.images.get().predictions.get())
        review_create(
            prediction=succeed(reviewed.images.get().predictions.get()),
            reviewer=radiologist_user,
            decision=ReviewDecision.AGREE,
        )
        studies = [received, pending, done, reviewed]
        # Left stale on purpose: the refresh must derive every status from the predictions.
        Study.objects.filter(id__in=[s.id for s in studies]).update(status=StudyStatus.AI_PENDING)

        with CaptureQueriesContext(connection) as queries:
            statuses = studies_refresh_status(study_ids=[s.id for s in studies])

        expected = [StudyStatus.RECEIVED, StudyStatus.AI_PENDING, StudyStatus.AI_DONE, StudyStatus.REVIEWED]
        assert [statuses[s.id] for s in studies] == expected
        assert [Study.objects.get(id=s.id).status for s in studies] == expected
        assert Study.objects.get(id=done.id).ai_completed_at is not None
        # Lock, count, and one UPDATE per new status (three here), however many studies.
        assert len([q for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]) <= 5


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_claim_does_not_wait_for_or_skip_an_upload_holding_the_study(tiny_model, sample_image_bytes):
    """An upload holds its study's row while it commits; the worker must neither skip that
    study's queued work nor lock the study itself."""
    import threading

    from django.db import connections, transaction

    from inference.services import predictions_claim_next

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


class TestRefusal:
    def test_a_model_never_reads_an_image_smaller_than_its_input(self, tiny_model_file, sample_image_bytes):
        small = register(tiny_model_file, name="chest-small")  # reads 16×16
        large = register(tiny_model_file, name="chest-large", input_size=[96, 96])
        image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).image  # 28×28
        by_model = {p.model_id: p for p in image.predictions.all()}

        assert by_model[large.id].status == PredictionStatus.FAILED
        assert "28×28 pixels, smaller than the 96×96 this model reads" in by_model[large.id].error
        assert by_model[small.id].status == PredictionStatus.QUEUED
        assert predictions_rerun(images=[image]) == []  # re-running does not force the refused one

    def test_an_image_as_large_as_the_input_is_read(self, tiny_model_file, sample_image_bytes):
        register(tiny_model_file, name="chest-28", input_size=[28, 28])
        image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).image
        assert image.predictions.get().status == PredictionStatus.QUEUED
