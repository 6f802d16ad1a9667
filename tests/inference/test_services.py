from importlib import import_module

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError

from accounts.roles import Role
from imaging.intake import image_upload
from imaging.models import StudyStatus
from inference.models import AIModel, AIModelStatus, Prediction, PredictionStatus, Review, ReviewDecision
from inference.selectors import aimodels_for_study
from inference.services import (
    aimodel_activate,
    aimodel_register,
    aimodel_retire,
    predictions_rerun,
    review_create,
)
from inference.study_status import study_refresh_status
from tests.conftest import build_tiny_keras_model, tiny_card
from tests.factories import StudyFactory, UserFactory
from tests.support.predictions import succeed
from tests.web.conftest import make_aimodel, make_image, make_prediction

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

    def test_activation_is_all_or_nothing(self, tiny_model_file, monkeypatch):
        """Retiring the other versions and activating this one commit together, or not at all."""
        active = register(tiny_model_file, version="1.0.0")
        candidate = aimodel_register(weights_path=tiny_model_file, card=tiny_card(version="2.0.0"), activate=False)

        def fail(*args, **kwargs):
            raise RuntimeError("database went away mid-activation")

        monkeypatch.setattr(AIModel, "save", fail)
        with pytest.raises(RuntimeError):
            aimodel_activate(model=candidate)
        active.refresh_from_db()
        assert active.status == AIModelStatus.ACTIVE, "the old version was retired with no active one in its place"

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


class TestReview:
    @pytest.fixture
    def prediction(self, tiny_model, sample_image_bytes):
        image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-pneumonia-1.png")).image
        return image.predictions.get()

    def test_agree_records_reviewer_and_moves_the_study_to_reviewed(self, prediction, radiologist_user):
        succeed(prediction)
        study_refresh_status(study_id=prediction.image.study_id)
        review = review_create(prediction=prediction, reviewer=radiologist_user, decision=ReviewDecision.AGREE)
        assert review.final_label == "pneumonia" and review.reviewer == radiologist_user and review.reviewed_at
        prediction.image.study.refresh_from_db()
        assert prediction.image.study.status == StudyStatus.REVIEWED
        prediction.refresh_from_db()
        assert prediction.reviewed  # kept on the row for the API's "reviewed" filter

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
        prediction.refresh_from_db()
        assert not prediction.reviewed  # a refused review leaves the flag as it was
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


class TestStudyModalityOnPredictions:
    """Every result carries its study's modality (the API's modality filter reads it, not the study)."""

    def test_upload_rerun_and_refusal_all_copy_it(self, tiny_model, tiny_model_file, sample_image_bytes):
        register(tiny_model_file, name="chest-large", input_size=[96, 96])  # refuses a 28×28 image at once
        studies = [StudyFactory(modality="CR"), StudyFactory(modality="DX")]
        images = [image_upload(study=s, data=sample_image_bytes("cxr-normal-1.png")).image for s in studies]
        added = register(tiny_model_file, name="chest-b")
        assert len(predictions_rerun(images=images)) == 2  # one new result per image, from chest-b

        rows = Prediction.objects.values_list("study_modality", "image__study__modality", "model__name", "status")
        assert len(rows) == 6
        assert {(mine, theirs) for mine, theirs, _, _ in rows} == {("CR", "CR"), ("DX", "DX")}
        assert {(name, status) for _, _, name, status in rows} >= {("chest-large", "failed"), (added.name, "queued")}

    def test_the_migration_fills_existing_results(self, tiny_model, sample_image_bytes):
        for modality in ("CR", "DX", "CR"):
            image_upload(study=StudyFactory(modality=modality), data=sample_image_bytes("cxr-normal-1.png"))
        Prediction.objects.update(study_modality="")

        import_module("inference.migrations.0007_prediction_study_modality").backfill(apps, schema_editor=None)

        assert sorted(Prediction.objects.values_list("study_modality", flat=True)) == ["CR", "CR", "DX"]


def test_the_migration_marks_results_with_a_review_reviewed(radiologist_user):
    model = make_aimodel()
    study = StudyFactory()
    reviewed, unreviewed = (make_prediction(make_image(study, name=name), model) for name in ("a.png", "b.png"))
    Review.objects.create(prediction=reviewed, decision="agree", final_label="pneumonia", reviewer=radiologist_user)
    Prediction.objects.update(reviewed=False)

    import_module("inference.migrations.0008_prediction_reviewed").backfill(apps, schema_editor=None)

    assert set(Prediction.objects.filter(reviewed=True).values_list("id", flat=True)) == {reviewed.id}
    assert Prediction.objects.get(id=unreviewed.id).reviewed is False
