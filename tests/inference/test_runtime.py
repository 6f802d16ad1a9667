"""The worker engine, run in-process (the real worker is exercised in tests/test_journey.py)."""

import uuid

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.test import override_settings
from PIL import Image as PILImage

from imaging.intake import image_upload
from imaging.models import StudyStatus
from inference import runtime
from inference.claims import prediction_record_success, predictions_claim
from inference.forward import gradcam_for, heatmaps_at_input, prediction_pass_for
from inference.ml import ood
from inference.ml.serving import gradcam, load_model
from inference.models import AIModel, Prediction, PredictionStatus
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db


def upload(sample_image_bytes, name="cxr-pneumonia-1.png", study=None):
    return image_upload(study=study or StudyFactory(), data=sample_image_bytes(name)).image


def test_run_writes_label_confidence_probabilities_and_heatmap(tiny_model, sample_image_bytes):
    image = upload(sample_image_bytes)
    prediction = image.predictions.get()

    assert runtime.run_batch(prediction_id=prediction.id) == 1
    # The heatmap follows as its own task, after the second opinion is stored.
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.SUCCEEDED and not prediction.heatmap
    assert runtime.run_heatmaps(prediction_ids=[prediction.id]) == 1

    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.SUCCEEDED
    assert prediction.label in tiny_model.labels
    assert set(prediction.probabilities) == set(tiny_model.labels)
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert prediction.confidence == pytest.approx(max(prediction.probabilities.values()))
    assert prediction.is_abnormal == (prediction.label != "normal")
    assert prediction.attempts == 1 and prediction.worker_host and prediction.inference_ms > 0
    heatmap = PILImage.open(default_storage.open(prediction.heatmap.name))
    assert heatmap.size == (image.width, image.height) and heatmap.mode == "L"
    image.study.refresh_from_db()
    assert image.study.status == StudyStatus.AI_DONE and image.study.ai_completed_at


def test_running_the_same_task_twice_changes_nothing(tiny_model, sample_image_bytes):
    prediction = upload(sample_image_bytes).predictions.get()
    runtime.run_batch(prediction_id=prediction.id)
    prediction.refresh_from_db()
    before = {f.name: getattr(prediction, f.name) for f in Prediction._meta.fields}

    assert runtime.run_batch(prediction_id=prediction.id) == 0

    prediction.refresh_from_db()
    assert {f.name: getattr(prediction, f.name) for f in Prediction._meta.fields} == before


def test_unknown_prediction_id_is_a_no_op(tiny_model):
    assert runtime.run_batch(prediction_id=uuid.uuid4()) == 0


def test_one_task_runs_every_queued_prediction_of_its_model_as_a_batch(tiny_model, sample_image_bytes):
    study = StudyFactory()
    names = ["cxr-normal-1.png", "cxr-normal-2.png", "cxr-pneumonia-1.png", "cxr-pneumonia-2.png"]
    predictions = [upload(sample_image_bytes, name, study).predictions.get() for name in names]

    assert runtime.run_batch(prediction_id=predictions[2].id) == 4

    assert set(Prediction.objects.values_list("status", flat=True)) == {PredictionStatus.SUCCEEDED}
    assert len(set(Prediction.objects.values_list("claim_token", flat=True))) == 1


def test_a_failing_model_marks_the_prediction_failed_with_the_reason(tiny_model, sample_image_bytes, monkeypatch):
    prediction = upload(sample_image_bytes).predictions.get()

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(runtime, "prediction_pass", lambda *args: broken)
    runtime.run_batch(prediction_id=prediction.id)

    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.FAILED
    assert "The model failed to run" in prediction.error and "illegal memory access" in prediction.error
    prediction.image.study.refresh_from_db()
    assert prediction.image.study.status == StudyStatus.AI_DONE  # failed is finished: never left queued


def test_weights_that_do_not_match_their_checksum_fail_clearly(tiny_model, sample_image_bytes, monkeypatch):
    prediction = upload(sample_image_bytes).predictions.get()
    tiny_model.weights_sha256 = "0" * 64
    tiny_model.save(update_fields=["weights_sha256"])
    runtime.run_batch(prediction_id=prediction.id)
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.FAILED
    assert "do not match their registered sha256" in prediction.error


def test_an_unreadable_image_fails_alone_and_the_batch_goes_on(tiny_model, sample_image_bytes):
    study = StudyFactory()
    good = upload(sample_image_bytes, "cxr-normal-1.png", study).predictions.get()
    bad = upload(sample_image_bytes, "cxr-normal-2.png", study).predictions.get()
    default_storage.delete(bad.image.file.name)

    runtime.run_batch(prediction_id=good.id)

    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.status == PredictionStatus.SUCCEEDED
    assert bad.status == PredictionStatus.FAILED and "missing from storage" in bad.error


def test_a_result_from_a_superseded_claim_is_discarded(tiny_model, sample_image_bytes):
    prediction = upload(sample_image_bytes).predictions.get()
    stale = predictions_claim(prediction_id=prediction.id)
    # The sweeper gave the work to someone else in the meantime.
    Prediction.objects.filter(id=prediction.id).update(status=PredictionStatus.QUEUED, claim_token=None)
    fresh = predictions_claim(prediction_id=prediction.id)

    assert not prediction_record_success(
        prediction=stale.predictions[0], token=stale.token, probabilities=[0.9, 0.1], inference_ms=1.0
    )
    assert prediction_record_success(
        prediction=fresh.predictions[0], token=fresh.token, probabilities=[0.2, 0.8], inference_ms=1.0
    )
    prediction.refresh_from_db()
    assert prediction.label == "pneumonia" and prediction.confidence == pytest.approx(0.8)


def test_heatmaps_are_batched_match_the_label_and_are_written_once(tiny_model, sample_image_bytes):
    study = StudyFactory()
    names = ["cxr-normal-1.png", "cxr-pneumonia-1.png", "cxr-pneumonia-2.png"]
    predictions = [upload(sample_image_bytes, name, study).predictions.get() for name in names]
    runtime.run_batch(prediction_id=predictions[0].id)
    ids = [p.id for p in predictions]

    assert runtime.run_heatmaps(prediction_ids=ids) == 3
    first = {p.id: p.heatmap.name for p in Prediction.objects.filter(id__in=ids)}
    assert all(first.values())
    assert runtime.run_heatmaps(prediction_ids=ids) == 0  # a second delivery changes nothing
    assert {p.id: p.heatmap.name for p in Prediction.objects.filter(id__in=ids)} == first


def test_a_queued_prediction_gets_no_heatmap(tiny_model, sample_image_bytes):
    prediction = upload(sample_image_bytes).predictions.get()
    assert runtime.run_heatmaps(prediction_ids=[prediction.id]) == 0
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.QUEUED and not prediction.heatmap


@override_settings(MEDPORTAL_BATCH_SIZE=2)
def test_one_task_drains_its_models_queue_in_batches(tiny_model, sample_image_bytes):
    study = StudyFactory()
    names = ["cxr-normal-1.png", "cxr-normal-2.png", "cxr-pneumonia-1.png", "cxr-pneumonia-2.png"]
    predictions = [upload(sample_image_bytes, name, study).predictions.get() for name in names]

    assert runtime.run_batch(prediction_id=predictions[0].id) == 4

    rows = Prediction.objects.all()
    assert {p.status for p in rows} == {PredictionStatus.SUCCEEDED}
    assert len({p.claim_token for p in rows}) == 2 and {p.attempts for p in rows} == {1}
    # Every other task of the burst now finds nothing left to do.
    assert all(runtime.run_batch(prediction_id=p.id) == 0 for p in predictions[1:])


@override_settings(MEDPORTAL_BATCH_SIZE=2, MEDPORTAL_DRAIN_SECONDS=0)
def test_without_drain_time_a_task_runs_one_batch(tiny_model, sample_image_bytes):
    study = StudyFactory()
    names = ["cxr-normal-1.png", "cxr-normal-2.png", "cxr-pneumonia-1.png"]
    predictions = [upload(sample_image_bytes, name, study).predictions.get() for name in names]

    assert runtime.run_batch(prediction_id=predictions[0].id) == 2
    assert Prediction.objects.filter(status=PredictionStatus.QUEUED).count() == 1


def test_warm_models_loads_each_active_model_of_the_queues(tiny_model):
    runtime._models.clear()
    assert runtime.warm_models(queues=["some-other-queue"]) == 0
    assert runtime.loaded_model_count() == 0
    assert runtime.warm_models(queues=[tiny_model.queue]) == 1
    assert runtime.loaded_model_count() == 1


def test_compiled_gradcam_matches_the_reference_implementation(tiny_model_file):
    model = load_model(tiny_model_file)
    batch = np.random.default_rng(3).uniform(0, 255, size=(5, 16, 16, 1)).astype(np.float32)
    classes = [0, 1, 1, 0, 1]

    compiled = gradcam_for(model, "features")

    assert compiled is gradcam_for(model, "features")  # traced once, reused
    reference = gradcam(model, batch, classes, layer_name="features")
    np.testing.assert_allclose(compiled(batch, classes), reference, atol=1e-5)
    single = gradcam(model, batch[:1], [1], layer_name="features")
    np.testing.assert_allclose(compiled(batch[:1], [1]), single, atol=1e-5)


def test_a_heatmap_task_also_takes_other_heatmaps_of_its_model_waiting(tiny_model, sample_image_bytes):
    study = StudyFactory()
    names = ["cxr-normal-1.png", "cxr-normal-2.png", "cxr-pneumonia-1.png"]
    predictions = [upload(sample_image_bytes, name, study).predictions.get() for name in names]
    runtime.run_batch(prediction_id=predictions[0].id)

    assert runtime.run_heatmaps(prediction_ids=[predictions[0].id]) == 3
    assert all(p.heatmap for p in Prediction.objects.all())
    assert runtime.run_heatmaps(prediction_ids=[predictions[1].id, predictions[2].id]) == 0


def test_a_heatmap_reuses_the_input_its_prediction_just_read(tiny_model, sample_image_bytes, monkeypatch):
    study = StudyFactory()
    names = ["cxr-normal-1.png", "cxr-pneumonia-1.png"]
    predictions = [upload(sample_image_bytes, name, study).predictions.get() for name in names]
    decoded = []
    real = runtime.image_pixels
    monkeypatch.setattr(runtime, "image_pixels", lambda image: decoded.append(image.id) or real(image))

    # As for a model whose pass cannot draw heatmaps: the heatmap task runs Grad-CAM itself.
    real_pass = runtime.prediction_pass

    def without_heatmaps(*args):
        step = real_pass(*args)

        def run(batch):
            result = step(batch)
            result.heatmaps = result.heatmap_classes = None
            return result

        return run

    monkeypatch.setattr(runtime, "prediction_pass", without_heatmaps)

    runtime.run_batch(prediction_id=predictions[0].id)
    assert sorted(decoded) == sorted(p.image_id for p in predictions)
    decoded.clear()

    assert runtime.run_heatmaps(prediction_ids=[p.id for p in predictions]) == 2
    assert decoded == []  # no second decode
    # Taken, not kept: a heatmap computed again later reads the image afresh.
    Prediction.objects.filter(id=predictions[0].id).update(heatmap="")
    assert runtime.run_heatmaps(prediction_ids=[predictions[0].id]) == 1
    assert decoded == [predictions[0].image_id]


def test_the_prediction_pass_gives_what_separate_passes_gave(tiny_model_file):
    import keras  # noqa: PLC0415 - TensorFlow takes seconds to load; only tests that need a model pay for it

    model = load_model(tiny_model_file)
    batch = np.random.default_rng(5).uniform(0, 255, size=(6, 16, 16, 1)).astype(np.float32)

    step = prediction_pass_for(model, check_layers=["features"], gradcam_layer="features")
    assert step is prediction_pass_for(model, check_layers=["features"], gradcam_layer="features")
    result = step(batch)

    proba = np.asarray(model(batch, training=False), dtype=np.float64)
    np.testing.assert_allclose(result.proba, proba, rtol=1e-6)
    activation = np.asarray(keras.Model(model.inputs, model.get_layer("features").output)(batch))
    # Pooled in the graph as the input check was fitted: mean and standard deviation in float64.
    np.testing.assert_allclose(result.features[0], ood.pool(activation), rtol=1e-9, atol=1e-12)
    classes = proba.argmax(axis=1)
    np.testing.assert_array_equal(result.heatmap_classes, classes)
    heatmaps = heatmaps_at_input(result.heatmaps, (16, 16))
    np.testing.assert_allclose(heatmaps, gradcam(model, batch, classes, layer_name="features"), atol=1e-5)


def _heatmap_pixels(prediction_ids) -> dict:
    rows = Prediction.objects.filter(id__in=prediction_ids)
    return {p.id: np.asarray(PILImage.open(default_storage.open(p.heatmap.name)), dtype=int) for p in rows}


def test_the_heatmap_drawn_by_the_prediction_pass_is_stored_without_running_gradcam_again(
    tiny_model, sample_image_bytes, monkeypatch
):
    study = StudyFactory()
    names = ["cxr-normal-1.png", "cxr-pneumonia-1.png", "cxr-pneumonia-2.png"]
    ids = [upload(sample_image_bytes, name, study).predictions.get().id for name in names]
    runtime.run_batch(prediction_id=ids[0])

    monkeypatch.setattr(runtime, "gradcam_for", lambda *args: pytest.fail("Grad-CAM ran a second time"))
    assert runtime.run_heatmaps(prediction_ids=ids) == 3
    drawn = _heatmap_pixels(ids)
    monkeypatch.undo()

    # A heatmap task in a process that did not run the prediction computes the same maps itself.
    Prediction.objects.filter(id__in=ids).update(heatmap="")
    runtime._recent_heatmaps.clear()
    assert runtime.run_heatmaps(prediction_ids=ids) == 3
    computed = _heatmap_pixels(ids)
    assert all(np.abs(drawn[i] - computed[i]).max() <= 1 for i in ids)


def test_a_drawn_heatmap_of_another_class_than_the_label_is_not_used(tiny_model, sample_image_bytes, monkeypatch):
    prediction = upload(sample_image_bytes).predictions.get()
    runtime.run_batch(prediction_id=prediction.id)
    prediction.refresh_from_db()
    key = (prediction.id, tiny_model.weights_sha256)
    index, heatmap = runtime._recent_heatmaps[key]
    assert index == tiny_model.labels.index(prediction.label)
    runtime._recent_heatmaps[key] = (1 - index, np.zeros_like(heatmap))
    ran = []
    real = runtime.gradcam_for
    monkeypatch.setattr(runtime, "gradcam_for", lambda *args: ran.append(args) or real(*args))

    assert runtime.run_heatmaps(prediction_ids=[prediction.id]) == 1
    assert len(ran) == 1


def test_a_model_whose_gradcam_cannot_be_drawn_still_gives_its_second_opinions(tiny_model, sample_image_bytes):
    AIModel.objects.filter(id=tiny_model.id).update(gradcam_layer="no-such-layer")
    prediction = upload(sample_image_bytes).predictions.get()

    assert runtime.run_batch(prediction_id=prediction.id) == 1
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.SUCCEEDED, prediction.error
    assert prediction.label in tiny_model.labels
    # The heatmap is an aid: without one the second opinion stands.
    assert runtime.run_heatmaps(prediction_ids=[prediction.id]) == 0


def test_a_heatmap_task_writes_its_batch_with_one_statement(tiny_model, sample_image_bytes):
    from django.db import connection  # noqa: PLC0415
    from django.test.utils import CaptureQueriesContext  # noqa: PLC0415

    study = StudyFactory()
    names = ["cxr-normal-1.png", "cxr-normal-2.png", "cxr-pneumonia-1.png"]
    ids = [upload(sample_image_bytes, name, study).predictions.get().id for name in names]
    runtime.run_batch(prediction_id=ids[0])

    with CaptureQueriesContext(connection) as queries:
        assert runtime.run_heatmaps(prediction_ids=ids) == 3
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(("UPDATE", "3 times: UPDATE"))]
    assert len(writes) == 1
    assert all(p.heatmap for p in Prediction.objects.filter(id__in=ids))
