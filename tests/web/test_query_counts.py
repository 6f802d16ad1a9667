"""No page issues more queries as its rows grow: each is measured with few rows and with many."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inference.models import PredictionStatus
from inference.study_status import study_refresh_status
from tests.factories import PatientFactory, StudyFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = pytest.mark.django_db

# A fixed ceiling per page: session, user, roles, the page's reads and its audit INSERT.
MAX_QUERIES = 12


def count_queries(client, url, **params) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params)
    assert response.status_code == 200
    return len(queries)


def test_patient_list(staff_client):
    url = reverse("pages:patient-list")
    for _ in range(2):
        StudyFactory(patient=PatientFactory())
    few = count_queries(staff_client, url)
    for _ in range(40):
        StudyFactory(patient=PatientFactory())
    many = count_queries(staff_client, url)
    searched = count_queries(staff_client, url, q="MRN")
    assert few == many == searched <= MAX_QUERIES


def test_study_page(staff_client):
    first, second = make_aimodel(name="one"), make_aimodel(name="two")
    study = StudyFactory()

    def add_images(n):
        for i in range(n):
            image = make_image(study, name=f"{study.images.count()}-{i}.png")
            make_prediction(image, first)
            make_prediction(image, second, status=PredictionStatus.FAILED)

    url = reverse("pages:study-detail", args=[study.id])
    add_images(1)
    few = count_queries(staff_client, url)
    add_images(15)
    many = count_queries(staff_client, url)
    assert few == many <= MAX_QUERIES
    fragment = reverse("pages:study-results", args=[study.id])
    assert count_queries(staff_client, fragment) <= MAX_QUERIES


def test_worklist(radiologist_client):
    model = make_aimodel()

    def add_studies(n):
        for _ in range(n):
            study = StudyFactory()
            make_prediction(make_image(study, name=str(study.id)), model)
            study_refresh_status(study_id=study.id)

    url = reverse("pages:worklist")
    add_studies(2)
    few = count_queries(radiologist_client, url)
    few_by_patient = count_queries(radiologist_client, url, sort="patient")
    add_studies(30)
    many = count_queries(radiologist_client, url)
    many_by_patient = count_queries(radiologist_client, url, sort="-patient")
    filtered = count_queries(radiologist_client, url, modality="DX")
    assert few == many == filtered <= MAX_QUERIES
    # Sorted by patient, the page's patients are one query of their own rather than a join.
    assert few_by_patient == many_by_patient == few + 1 <= MAX_QUERIES


def test_review_page(radiologist_client):
    model = make_aimodel()
    study = StudyFactory()

    def add(n):
        for i in range(n):
            make_prediction(make_image(study, name=f"{study.images.count()}-{i}.png"), model)
        study_refresh_status(study_id=study.id)

    url = reverse("pages:review", args=[study.id])
    add(1)
    few = count_queries(radiologist_client, url)
    add(10)
    many = count_queries(radiologist_client, url)
    assert few == many <= MAX_QUERIES


def test_review_priors(radiologist_client):
    model = make_aimodel()
    patient = PatientFactory()
    current = StudyFactory(patient=patient)

    def add_priors(n, images):
        for _ in range(n):
            prior = StudyFactory(patient=patient, study_date=current.study_date - timedelta(days=1))
            for i in range(images):
                make_prediction(make_image(prior, name=f"{prior.id}-{i}.png"), model)

    url = reverse("pages:review-priors", args=[current.id])
    add_priors(1, 1)
    few = count_queries(radiologist_client, url)
    add_priors(12, 10)  # more studies and images than the panel shows
    many = count_queries(radiologist_client, url)
    assert few == many <= MAX_QUERIES


def test_dashboards(client_for, admin_user):
    client = client_for(admin_user)  # an admin sees all three panels
    model = make_aimodel()
    url = reverse("pages:home")
    study = StudyFactory()
    make_prediction(make_image(study, name="a"), model)
    cache.clear()  # the queue status is cached for a moment: compare cold with cold
    few = count_queries(client, url)
    for i in range(10):
        study = StudyFactory()
        make_prediction(make_image(study, name=str(i)), model, status=PredictionStatus.FAILED)
    cache.clear()
    many = count_queries(client, url)
    assert few == many <= 20


def test_patient_page(staff_client):
    patient = PatientFactory()
    url = reverse("pages:patient-detail", args=[patient.id])
    StudyFactory(patient=patient)
    few = count_queries(staff_client, url)
    for _ in range(20):
        make_image(StudyFactory(patient=patient))
    many = count_queries(staff_client, url)
    assert few == many <= MAX_QUERIES
