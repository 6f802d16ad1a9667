"""The AI flag and top confidence kept on each study: after every service that writes results or
reviews, they equal what the study's predictions and reviews say, worked out from scratch."""

import importlib

import pytest
from django.apps import apps

from imaging.intake import image_upload
from imaging.models import Study
from inference.claims import (
    prediction_record_failure,
    prediction_record_success,
    predictions_claim,
    predictions_record_successes,
    predictions_release,
)
from inference.models import Prediction, PredictionStatus, ReviewDecision
from inference.services import predictions_rerun, review_amend, review_create, reviews_agree_all
from tests.factories import StudyFactory
from tests.support.predictions import study_ai_flags_recomputed, study_ai_flags_stored

pytestmark = pytest.mark.django_db

NORMAL, ABNORMAL = "normal", "pneumonia"  # the tiny model's labels


def assert_no_drift() -> dict:
    assert study_ai_flags_stored() == study_ai_flags_recomputed()
    return study_ai_flags_stored()


def probabilities(label: str, confidence: float) -> list[float]:
    return [confidence, 1 - confidence] if label == NORMAL else [1 - confidence, confidence]


def claim_of(study: Study, *, batch_size: int):
    first = Prediction.objects.filter(image__study=study, status=PredictionStatus.QUEUED).order_by("queued_at").first()
    return predictions_claim(prediction_id=first.id, batch_size=batch_size)


def test_flags_follow_every_service_that_writes_results_and_reviews(tiny_model, sample_image_bytes, radiologist_user):
    first, second = StudyFactory(), StudyFactory()
    for name in ("cxr-pneumonia-1.png", "cxr-normal-1.png", "cxr-normal-2.png"):
        image_upload(study=first, data=sample_image_bytes(name))
    for name in ("cxr-pneumonia-1.png", "cxr-normal-1.png"):
        image_upload(study=second, data=sample_image_bytes(name))
    assert assert_no_drift()[first.id] == (None, False)

    # Two results of three in one batch: the study is still pending, its flag is up already.
    claim = claim_of(first, batch_size=2)
    results = [
        (claim.predictions[0], probabilities(ABNORMAL, 0.9)),
        (claim.predictions[1], probabilities(ABNORMAL, 0.7)),
    ]
    predictions_record_successes(token=claim.token, results=results, inference_ms=1.0)
    assert assert_no_drift()[first.id] == (pytest.approx(0.9), True)

    # The third, alone, and normal.
    claim = claim_of(first, batch_size=1)
    assert prediction_record_success(
        prediction=claim.predictions[0], token=claim.token, probabilities=probabilities(NORMAL, 0.95), inference_ms=1.0
    )
    assert_no_drift()

    # The second study: one result fails, the other is given back for a retry, then both run again.
    claim = claim_of(second, batch_size=2)
    prediction_record_failure(prediction=claim.predictions[0], token=claim.token, reason="unreadable")
    predictions_release(predictions=[claim.predictions[1]], token=claim.token, reason="worker lost")
    assert assert_no_drift()[second.id] == (None, False)
    predictions_rerun(images=list(second.images.all()))
    claim = claim_of(second, batch_size=2)
    results = [
        (claim.predictions[0], probabilities(ABNORMAL, 0.85)),
        (claim.predictions[1], probabilities(ABNORMAL, 0.6)),
    ]
    predictions_record_successes(token=claim.token, results=results, inference_ms=1.0)
    assert assert_no_drift()[second.id] == (pytest.approx(0.85), True)

    # A review takes its result out of the flag; amending it changes nothing the flag reads.
    top = Prediction.objects.filter(image__study=first, is_abnormal=True).order_by("-confidence").first()
    review = review_create(prediction=top, reviewer=radiologist_user, decision=ReviewDecision.AGREE)
    assert assert_no_drift()[first.id] == (pytest.approx(0.7), False)
    review_amend(
        review=review,
        user=radiologist_user,
        decision=ReviewDecision.OVERRIDE,
        final_label=NORMAL,
        reason="Second look: no consolidation.",
    )
    assert_no_drift()

    # Agreeing with all of a study's results clears its flag.
    reviews_agree_all(study=second, reviewer=radiologist_user)
    assert assert_no_drift()[second.id] == (None, False)


def test_the_migration_fills_the_flags_of_studies_from_before_it(tiny_model, sample_image_bytes, radiologist_user):
    migration = importlib.import_module("inference.migrations.0006_study_ai_flag_backfill")
    flagged, reviewed, untouched = StudyFactory(), StudyFactory(), StudyFactory()
    for study in (flagged, reviewed):
        image_upload(study=study, data=sample_image_bytes("cxr-pneumonia-1.png"))
        claim = claim_of(study, batch_size=1)
        predictions_record_successes(
            token=claim.token, results=[(claim.predictions[0], probabilities(ABNORMAL, 0.93))], inference_ms=1.0
        )
    review_create(
        prediction=Prediction.objects.get(image__study=reviewed),
        reviewer=radiologist_user,
        decision=ReviewDecision.AGREE,
    )
    expected = assert_no_drift()
    Study.objects.update(ai_top_confidence=None, ai_flagged=False)

    migration.backfill(apps, None)

    assert study_ai_flags_stored() == expected
    assert expected[flagged.id] == (pytest.approx(0.93), True)
    assert expected[reviewed.id] == expected[untouched.id] == (None, False)
