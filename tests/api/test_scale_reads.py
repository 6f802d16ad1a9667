"""The list reads that must stay cheap at hospital scale: same rows, bounded counts, keyset paging.

Run on SQLite and on PostgreSQL (the bounded count's estimate and the trigram indexes are
PostgreSQL's; the rows returned must be the same on both).
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api import pagination
from audit.models import AuditEvent
from imaging.models import Image, Study
from inference.models import Prediction, PredictionStatus, Review
from inference.selectors import studies_worklist
from inference.services import review_create
from inference.study_status import studies_refresh_ai_flag
from patients.models import Patient
from patients.selectors import patient_list, patients_with_study_summary
from tests.api.helpers import make_aimodel, make_image, make_prediction
from tests.factories import PatientFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db


def _ids(client, path: str, **params) -> list[str]:
    response = client.get(path, {**params, "page_size": 100})
    assert response.status_code == 200, response.content[:300]
    return [row["id"] for row in response.json()["results"]]


def test_choice_filters_return_each_matching_row_once(client_for_role):
    """Several values of a choice filter, on rows joined to many others, still list each row once."""
    reviewer = UserFactory(role="radiologist")
    second_model = make_aimodel(name="cxr-second")
    studies = [StudyFactory(modality=modality, status=status) for modality, status in
               [("DX", "ai_done"), ("CR", "reviewed"), ("MR", "ai_done"), ("DX", "received")]]  # fmt: skip
    for study in studies:
        for color in (1, 2, 3):
            image = make_image(study, color=color)
            make_prediction(image)
            failed = make_prediction(image, second_model, status=PredictionStatus.FAILED)
            assert failed.status == "failed"
    review_create(prediction=Prediction.objects.filter(status="succeeded").first(), reviewer=reviewer, decision="agree")
    client = client_for_role("staff")

    listed = _ids(client, "/api/v1/studies/", status=["ai_done", "received"], modality=["DX", "MR"])
    expected = Study.objects.filter(status__in=["ai_done", "received"], modality__in=["DX", "MR"])
    assert sorted(listed) == sorted(str(pk) for pk in expected.values_list("id", flat=True))
    assert len(listed) == len(set(listed)) == 3

    listed = _ids(client, "/api/v1/predictions/", status=["succeeded", "failed"], modality=["DX"])
    expected = Prediction.objects.filter(image__study__modality="DX")
    assert sorted(listed) == sorted(str(pk) for pk in expected.values_list("id", flat=True))
    assert len(listed) == len(set(listed)) == 12

    listed = _ids(client, "/api/v1/predictions/", status="succeeded", reviewed="false")
    assert len(listed) == len(set(listed)) == 11
    assert _ids(client, "/api/v1/predictions/", reviewed="true") == [str(Review.objects.get().prediction_id)]

    listed = _ids(client, "/api/v1/worklist/", priority=[1, 2, 3], status=["ai_done", "received"])
    assert sorted(listed) == sorted(str(s.id) for s in studies if s.status in ("ai_done", "received"))

    listed = _ids(client, "/api/v1/images/", modality=["DX", "MR"])
    assert len(listed) == len(set(listed)) == 9


def test_image_counts_and_patient_summaries_are_per_row(client_for_role):
    patient = PatientFactory()
    busy = StudyFactory(patient=patient)
    empty = StudyFactory(patient=patient)
    for color in (1, 2, 3):
        make_image(busy, color=color)
    # A structured report filed with the study is an instance, not an image.
    Image.objects.filter(pk=make_image(busy, color=4).pk).update(
        width=0, height=0, analysable=False, not_analysable_reason="Not an image (Comprehensive SR Storage)."
    )
    rows = {row["id"]: row for row in client_for_role("staff").get("/api/v1/studies/").json()["results"]}
    assert rows[str(busy.id)]["image_count"] == 3
    assert rows[str(empty.id)]["image_count"] == 0

    other = PatientFactory()
    summary = {p.id: p for p in patients_with_study_summary(patients=list(patient_list()))}
    assert summary[patient.id].study_count == 2
    assert summary[patient.id].last_study_at == max(busy.created_at, empty.created_at)
    assert summary[other.id].study_count == 0
    assert summary[other.id].last_study_at is None


def test_worklist_flag_follows_the_top_unreviewed_abnormal_confidence():
    reviewer = UserFactory(role="radiologist")
    flagged, reviewed, normal, confident_below = (StudyFactory(status="ai_done", priority=3) for _ in range(4))
    make_prediction(make_image(flagged))
    Review.objects.create(
        prediction=make_prediction(make_image(reviewed)), decision="agree", final_label="x", reviewer=reviewer
    )
    make_prediction(make_image(normal), label="normal")
    low = make_prediction(make_image(confident_below))
    Prediction.objects.filter(pk=low.pk).update(confidence=0.5)
    # Written past the services above: refreshed as they would have.
    studies_refresh_ai_flag(study_ids=[reviewed.id, confident_below.id])
    rows = {study.id: study for study in studies_worklist()}
    assert (rows[flagged.id].ai_flagged, rows[flagged.id].ai_top_confidence) == (True, 0.91)
    assert (rows[reviewed.id].ai_flagged, rows[reviewed.id].ai_top_confidence) == (False, None)
    assert (rows[normal.id].ai_flagged, rows[normal.id].ai_top_confidence) == (False, None)
    assert (rows[confident_below.id].ai_flagged, rows[confident_below.id].ai_top_confidence) == (False, 0.5)
    assert rows[flagged.id].image_count == 1
    # Flagged first within a priority, then the oldest.
    assert list(rows)[0] == flagged.id


def test_patient_search_matches_mrn_and_name_parts_case_insensitively():
    smith = PatientFactory(mrn="MRN-0042", family_name="Smith", given_name="Anna")
    PatientFactory(mrn="X-1", family_name="Jones", given_name="Bob")
    assert list(Patient.objects.search("smi")) == [smith]
    assert list(Patient.objects.search("mrn-00")) == [smith]
    assert list(Patient.objects.search("mrn-0042")) == [smith]
    assert list(Patient.objects.search("ann")) == [smith]


@pytest.fixture
def small_exact_limit(monkeypatch):
    monkeypatch.setattr(pagination, "EXACT_COUNT_LIMIT", 5)


def test_page_numbers_reach_every_row_when_the_count_is_bounded(client_for_role, small_exact_limit):
    patients = sorted(PatientFactory.create_batch(12), key=lambda p: (p.family_name, p.given_name, p.mrn))
    client = client_for_role("staff")
    seen, path = [], "/api/v1/patients/?page_size=5"
    while path:
        body = client.get(path).json()
        # Above the limit the count is the planner's estimate on PostgreSQL, never less than limit + 1.
        assert body["count"] >= 6
        seen += [row["id"] for row in body["results"]]
        path = body["next"]
    assert seen == [str(p.id) for p in patients]
    assert client.get("/api/v1/patients/?page_size=5&page=9").status_code == 404


def test_page_count_is_exact_under_the_limit(client_for_role):
    PatientFactory.create_batch(3)
    body = client_for_role("staff").get("/api/v1/patients/?page_size=2").json()
    assert body["count"] == 3
    assert body["next"] is not None


def test_audit_trail_pages_by_cursor_newest_first(client_for_role):
    client = client_for_role("admin")
    for index in range(30):
        AuditEvent.objects.create(action="read", interface="api", object_type="patients.patient", object_id=str(index))
    expected = list(AuditEvent.objects.order_by("-occurred_at", "-id").values_list("id", flat=True))
    seen, path = [], "/api/v1/audit-events/?page_size=7"
    while path:
        body = client.get(path).json()
        assert "count" not in body
        seen += [row["id"] for row in body["results"]]
        path = body["next"]
    # Listing pages writes no audit rows of its own, so the trail read is exactly the one made.
    assert seen == expected
    assert len(seen) == 30


def test_audit_cursor_is_in_the_schema(client_for_role):
    schema = client_for_role("admin").get("/api/v1/schema/")
    assert schema.status_code == 200
    parameters = schema.json()["paths"]["/api/v1/audit-events/"]["get"]["parameters"]
    assert "cursor" in {parameter["name"] for parameter in parameters}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/patients/",
        "/api/v1/studies/",
        "/api/v1/images/",
        "/api/v1/predictions/",
        "/api/v1/reviews/",
        "/api/v1/worklist/",
        "/api/v1/audit-events/",
    ],
)
def test_query_count_does_not_depend_on_the_page_size(client_for_role, path):
    reviewer = UserFactory(role="radiologist")
    for index in range(30):
        study = StudyFactory(status="ai_done")
        prediction = make_prediction(make_image(study, color=index % 250))
        if index % 2:
            Review.objects.create(prediction=prediction, decision="agree", final_label="x", reviewer=reviewer)
        AuditEvent.objects.create(action="read", interface="api", object_type="patients.patient", object_id=str(index))
    client = client_for_role("admin")
    client.get("/api/v1/models/")  # session and roles loaded once

    def count(size: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path, {"page_size": size})
        assert response.status_code == 200
        assert len(response.json()["results"]) == size
        return len(queries)

    assert count(5) == count(15)


def _audit_inserts(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "audit_auditevent"')]


@pytest.mark.parametrize("rows", [1, 25, 60])
def test_a_list_page_writes_its_audit_rows_in_one_statement(client_for_role, rows):
    PatientFactory.create_batch(rows)
    client = client_for_role("staff")
    client.get("/api/v1/models/")
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/patients/", {"page_size": 100})
    assert len(response.json()["results"]) == rows
    assert len(_audit_inserts(queries)) == 1
    assert AuditEvent.objects.filter(detail="list", object_type="patients.patient").count() == rows


def test_the_patients_page_writes_its_audit_rows_in_one_statement(client):
    PatientFactory.create_batch(25)
    client.force_login(UserFactory(role="staff"))
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/patients/")
    assert response.status_code == 200
    assert len(_audit_inserts(queries)) == 1
