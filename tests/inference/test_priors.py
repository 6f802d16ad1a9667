"""The priors of a study: the same patient's earlier studies, newest first, bounded."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from imaging.models import Study
from inference.models import Review, ReviewDecision
from inference.selectors import study_priors
from tests.factories import PatientFactory, StudyFactory, UserFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = pytest.mark.django_db


def day(n: int) -> datetime.date:
    return datetime.date(2026, 1, 1) + datetime.timedelta(days=n)


def accessions(priors) -> list[str]:
    return [study.accession_number for study in priors.studies]


def test_only_the_same_patients_earlier_studies_newest_first():
    patient = PatientFactory()
    current = StudyFactory(patient=patient, accession_number="NOW", study_date=day(30))
    StudyFactory(patient=patient, accession_number="OLDEST", study_date=day(1))
    StudyFactory(patient=patient, accession_number="LAST-MONTH", study_date=day(20))
    StudyFactory(patient=patient, accession_number="LATER", study_date=day(40))  # not a prior of NOW
    StudyFactory(accession_number="OTHER-PATIENT", study_date=day(10))

    assert accessions(study_priors(study=current)) == ["LAST-MONTH", "OLDEST"]


def test_the_study_date_decides_over_the_registration_time():
    patient = PatientFactory()
    current = StudyFactory(patient=patient, accession_number="NOW", study_date=day(30))
    # Registered after the current study (imported from an archive), taken years before it.
    archived = StudyFactory(patient=patient, accession_number="ARCHIVE", study_date=day(-700))
    assert archived.created_at > current.created_at

    assert accessions(study_priors(study=current)) == ["ARCHIVE"]


def test_on_the_same_day_and_without_a_study_date_registration_order_decides():
    patient = PatientFactory()
    first = StudyFactory(patient=patient, accession_number="FIRST", study_date=day(5))
    second = StudyFactory(patient=patient, accession_number="SECOND", study_date=day(5))
    # No study date: its day is the day it was registered, the same day, in the morning.
    undated = StudyFactory(patient=patient, accession_number="UNDATED", study_date=None)
    morning = timezone.make_aware(datetime.datetime.combine(day(5), datetime.time(9)))
    Study.objects.filter(id=undated.id).update(created_at=morning)
    undated.refresh_from_db()

    assert accessions(study_priors(study=second)) == ["FIRST", "UNDATED"]
    assert accessions(study_priors(study=first)) == ["UNDATED"]
    assert accessions(study_priors(study=undated)) == []


def test_at_most_the_limit_and_says_when_there_are_more():
    patient = PatientFactory()
    current = StudyFactory(patient=patient, study_date=day(100))
    for n in range(12):
        StudyFactory(patient=patient, accession_number=f"P{n:02d}", study_date=day(n))

    priors = study_priors(study=current, limit=10)
    assert accessions(priors) == [f"P{n:02d}" for n in range(11, 1, -1)]
    assert priors.more is True
    everything = study_priors(study=current, limit=12)
    assert len(everything.studies) == 12 and everything.more is False


def test_each_prior_carries_its_first_images_with_ai_results_and_reviews_in_three_queries():
    model = make_aimodel()
    patient = PatientFactory()
    current = StudyFactory(patient=patient, study_date=day(50))
    reviewer = UserFactory(role="radiologist")
    for n in range(4):
        prior = StudyFactory(patient=patient, study_date=day(n))
        for i in range(5):
            prediction = make_prediction(make_image(prior, name=f"{n}-{i}.png"), model)
            Review.objects.create(
                prediction=prediction, decision=ReviewDecision.AGREE, final_label=prediction.label, reviewer=reviewer
            )

    with CaptureQueriesContext(connection) as queries:
        priors = study_priors(study=current, images=3)
        shown = [
            (
                study.image_count,
                [
                    (p.label, p.model.version, p.review.reviewer.username)
                    for i in study.shown_images
                    for p in i.predictions.all()
                ],
            )
            for study in priors.studies
        ]
    assert len(queries) == 3
    assert [count for count, _ in shown] == [5, 5, 5, 5]
    assert all(len(opinions) == 3 for _, opinions in shown)
    assert shown[0][1][0] == ("pneumonia", "1.2.0", reviewer.username)
    assert [image.original_filename for image in priors.studies[0].shown_images] == ["3-0.png", "3-1.png", "3-2.png"]
