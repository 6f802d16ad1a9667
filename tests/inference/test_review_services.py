"""Agree with all AI second opinions of a study: one review each through review_create, never twice,
and never for an opinion that cannot be reviewed."""

import pytest
from django.core.exceptions import ValidationError

from imaging.models import StudyStatus
from inference import services
from inference.models import Prediction, PredictionStatus, Review, ReviewDecision
from inference.services import review_create, reviews_agree_all
from inference.study_status import study_refresh_status
from tests.factories import StudyFactory, UserFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = pytest.mark.django_db

REFUSED = "Not run: the image is 16×12 pixels, smaller than the 28×28 this model reads."


@pytest.fixture
def mixed_study():
    """Three finished opinions, one refused by the model, one still running."""
    study = StudyFactory()
    model = make_aimodel()
    other = make_aimodel(name="cxr-other", labels=["normal", "effusion"])
    done = [
        make_prediction(make_image(study, name="a.png"), model, label="pneumonia"),
        make_prediction(make_image(study, name="b.png"), model, label="normal"),
        make_prediction(make_image(study, name="c.png"), other, label="effusion"),
    ]
    refused = make_prediction(make_image(study, name="d.png"), model, status=PredictionStatus.FAILED, error=REFUSED)
    running = make_prediction(make_image(study, name="e.png"), model, status=PredictionStatus.RUNNING)
    study_refresh_status(study_id=study.id)
    return study, done, refused, running


def test_agrees_with_each_finished_opinion_and_says_which_it_left(mixed_study, radiologist_user):
    study, done, refused, running = mixed_study

    outcome = reviews_agree_all(study=study, reviewer=radiologist_user)

    assert sorted(r.prediction_id for r in outcome.agreed) == sorted(p.id for p in done)
    reviews = Review.objects.filter(prediction__image__study=study)
    assert {(r.prediction_id, r.decision, r.final_label, r.reviewer_id) for r in reviews} == {
        (p.id, ReviewDecision.AGREE, p.label, radiologist_user.id) for p in done
    }
    assert outcome.left == [(refused, REFUSED), (running, "The AI is still reading this image.")]
    assert outcome.already_reviewed == []
    flagged = Prediction.objects.filter(image__study=study, reviewed=True)
    assert sorted(flagged.values_list("id", flat=True)) == sorted(p.id for p in done)


def test_twice_records_nothing_new(mixed_study, radiologist_user):
    study, done, *_ = mixed_study
    reviews_agree_all(study=study, reviewer=radiologist_user)

    again = reviews_agree_all(study=study, reviewer=radiologist_user)

    assert again.agreed == []
    assert sorted(p.id for p in again.already_reviewed) == sorted(p.id for p in done)
    assert Review.objects.filter(prediction__image__study=study).count() == len(done)


def test_an_earlier_override_is_kept(mixed_study, radiologist_user):
    study, done, *_ = mixed_study
    review_create(prediction=done[0], reviewer=radiologist_user, decision="override", final_label="normal")

    outcome = reviews_agree_all(study=study, reviewer=radiologist_user)

    assert [p.id for p in outcome.already_reviewed] == [done[0].id]
    assert Review.objects.get(prediction=done[0]).decision == ReviewDecision.OVERRIDE
    assert len(outcome.agreed) == 2


def test_an_opinion_that_finished_after_the_confirmation_is_left_to_read(mixed_study, radiologist_user):
    study, done, *_ = mixed_study

    outcome = reviews_agree_all(study=study, reviewer=radiologist_user, prediction_ids=[done[0].id, str(done[1].id)])

    assert sorted(r.prediction_id for r in outcome.agreed) == sorted([done[0].id, done[1].id])
    assert (done[2], "It finished after you confirmed; read it before agreeing.") in outcome.left
    assert not Review.objects.filter(prediction=done[2]).exists()


def test_the_study_is_reviewed_once_nothing_awaits(radiologist_user):
    study = StudyFactory()
    model = make_aimodel()
    for name in ("a.png", "b.png"):
        make_prediction(make_image(study, name=name), model)
    study_refresh_status(study_id=study.id)

    reviews_agree_all(study=study, reviewer=radiologist_user)

    study.refresh_from_db()
    assert study.status == StudyStatus.REVIEWED


def test_only_radiologists_and_all_or_nothing(mixed_study, radiologist_user, monkeypatch):
    study, *_ = mixed_study
    with pytest.raises(PermissionError):
        reviews_agree_all(study=study, reviewer=UserFactory(role="staff"))
    assert not Review.objects.exists()

    # A failure half-way leaves no review behind: the radiologist confirmed all of them or none.
    calls = []
    real = services.review_create

    def failing(**kwargs):
        calls.append(kwargs)
        if len(calls) == 2:
            raise ValidationError("boom")
        return real(**kwargs)

    monkeypatch.setattr(services, "review_create", failing)
    with pytest.raises(ValidationError):
        reviews_agree_all(study=study, reviewer=radiologist_user)
    assert not Review.objects.exists()
