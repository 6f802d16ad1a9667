"""List representations written out by hand for speed must equal what DRF builds field by field."""

import datetime
import json

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from imaging.apis import study_queryset
from imaging.serializers import StudyOutputSerializer
from inference.apis import PREDICTION_LIST_MODEL_DEFERRED, WorklistStudySerializer, prediction_queryset
from inference.models import Prediction, PredictionStatus, Review
from inference.selectors import studies_worklist
from inference.serializers import PredictionOutputSerializer
from tests.api.helpers import make_aimodel, make_image, make_prediction
from tests.factories import StudyFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def predictions():
    study = StudyFactory()
    model = make_aimodel()
    other = make_aimodel(name="cxr-other", version="2.0.1")
    queued = make_prediction(make_image(study, color=1), model, status=PredictionStatus.QUEUED)
    running = make_prediction(make_image(study, color=2), model, status=PredictionStatus.RUNNING)
    Prediction.objects.filter(id=running.id).update(
        started_at=datetime.datetime(2026, 6, 30, 23, 59, 59, 123456, tzinfo=datetime.UTC), attempts=2
    )
    failed = make_prediction(make_image(study, color=3), other, status=PredictionStatus.FAILED)
    normal = make_prediction(make_image(study, color=4), model, label="normal")
    reviewed = make_prediction(make_image(study, color=5), other)
    Prediction.objects.filter(id=reviewed.id).update(
        heatmap="heatmaps/x.png", inference_ms=12, probabilities={"normal": 0, "pneumonia": 1, "other": None}
    )
    Review.objects.create(
        prediction=reviewed, decision="override", final_label="normal", comment="Motion.", reviewer=UserFactory()
    )
    return [queued, running, failed, normal, reviewed]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/St_Johns"])
def test_written_out_representation_equals_drfs(predictions, settings, zone):
    settings.TIME_ZONE = zone
    request = APIRequestFactory().get("/api/v1/predictions/")
    with timezone.override(zone):
        for prediction in prediction_queryset().defer(*PREDICTION_LIST_MODEL_DEFERRED).order_by("queued_at"):
            serializer = PredictionOutputSerializer(context={"request": request})
            fast = serializer.to_representation(prediction)
            generic = serializers.ModelSerializer.to_representation(serializer, prediction)
            assert fast == generic, prediction.status
            assert json.dumps(fast, default=str) == json.dumps(generic, default=str)  # same key order too


def test_a_list_page_reads_no_row_on_its_own(predictions, client_for_role):
    """Every field the list shows comes with the page's one query (model, image, study, review, reviewer)."""
    client = client_for_role("staff")
    client.get("/api/v1/models/")
    cache.clear()  # the AI queue's status is looked up once per response, and cached for a second
    with CaptureQueriesContext(connection) as few:
        client.get("/api/v1/predictions/", {"page_size": 2})
    cache.clear()
    with CaptureQueriesContext(connection) as all_rows:
        rows = client.get("/api/v1/predictions/", {"page_size": 100}).json()["results"]
    assert len(rows) == len(predictions)
    assert len(all_rows) == len(few)


@pytest.mark.parametrize("zone", ["UTC", "America/St_Johns"])
def test_written_out_study_and_worklist_rows_equal_drfs(predictions, settings, zone):
    settings.TIME_ZONE = zone
    bare = StudyFactory(
        study_date=None, study_instance_uid="1.2.840.1", description="", referring_physician="Dr Ö", priority=1
    )
    make_prediction(make_image(predictions[0].image.study, color=6))  # unreviewed and abnormal: flagged
    flags = set()
    with timezone.override(zone):
        for serializer_class, rows in (
            (StudyOutputSerializer, study_queryset()),
            (WorklistStudySerializer, studies_worklist()),
        ):
            assert {row.id for row in rows} >= {bare.id, predictions[0].image.study_id}
            for study in rows:
                serializer = serializer_class()
                fast = serializer.to_representation(study)
                generic = serializers.ModelSerializer.to_representation(serializer, study)
                assert fast == generic
                assert json.dumps(fast, default=str) == json.dumps(generic, default=str)
                flags.add(fast.get("ai_flagged"))
    assert flags == {None, True, False}
