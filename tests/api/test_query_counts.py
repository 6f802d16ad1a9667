"""Every list endpoint costs the same number of queries for 1 row as for 50."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from inference.models import Review
from tests.api.helpers import make_aimodel, make_image, make_prediction
from tests.factories import StudyFactory, UserFactory

pytestmark = pytest.mark.django_db


def _predictions(n: int) -> None:
    reviewer = UserFactory(role="radiologist")
    for index in range(n):
        model = make_aimodel(name=f"model-{n}-{index}")
        prediction = make_prediction(image=make_image(StudyFactory(), color=index % 250), model=model)
        Review.objects.create(prediction=prediction, decision="agree", final_label="pneumonia", reviewer=reviewer)
    for index in range(n):
        AuditEvent.objects.create(action="read", interface="api", object_type="patients.patient", object_id=str(index))


LISTS = [
    "/api/v1/patients/",
    "/api/v1/studies/",
    "/api/v1/images/",
    "/api/v1/predictions/",
    "/api/v1/reviews/",
    "/api/v1/models/",
    "/api/v1/worklist/?status=received&status=ai_pending&status=ai_done&status=reviewed",
    "/api/v1/audit-events/",
]


def _count(client, path: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path + ("&" if "?" in path else "?") + "page_size=50")
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    # The audit trail pages by cursor and has no count; the rows on its page stand in for it.
    return len(queries), body.get("count", len(body["results"]))


@pytest.mark.parametrize("path", LISTS)
def test_list_queries_do_not_grow_with_rows(client_for_role, path):
    client = client_for_role("admin")
    client.get("/api/v1/models/")  # roles and session loaded once, as for any signed-in client
    _predictions(1)
    few, rows_few = _count(client, path)
    _predictions(49)
    many, rows_many = _count(client, path)
    assert rows_many > rows_few
    assert many == few, f"{path}: {few} queries for {rows_few} rows, {many} for {rows_many}"


def test_study_images_list_queries_do_not_grow(client_for_role):
    client = client_for_role("admin")
    study = StudyFactory()
    make_image(study)
    few, _ = _count(client, f"/api/v1/studies/{study.id}/images/")
    for color in range(2, 51):
        make_image(study, color=color)
    many, rows = _count(client, f"/api/v1/studies/{study.id}/images/")
    assert rows == 50
    assert many == few
