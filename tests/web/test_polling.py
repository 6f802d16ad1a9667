"""Polled fragments (the worklist's rows, a study's results): 304 and no audit row when nothing changed."""

import re

import pytest
from django.urls import reverse

from accounts.roles import Role
from audit.models import AuditEvent
from imaging.models import Priority
from inference.models import Prediction, PredictionStatus
from tests.factories import UserFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction
from tests.web.test_review import done_study

pytestmark = pytest.mark.django_db

WORKLIST = reverse("pages:worklist")
ROWS = reverse("pages:worklist-rows")


def embedded_etag(html: str, attribute: str) -> str:
    match = re.search(rf'{attribute}="([^"]*)"', html)
    assert match, f"{attribute} missing"
    return match.group(1).replace("&quot;", '"')


def audited(path: str) -> int:
    return AuditEvent.objects.filter(path=path).count()


def test_an_unchanged_worklist_poll_is_304_without_a_body_or_an_audit_row(radiologist_client):
    model = make_aimodel()
    first = done_study(model, accession_number="ACC-POLL-1", priority=Priority.STAT)
    page = radiologist_client.get(WORKLIST, {"priority": "1"}).content.decode()
    etag = embedded_etag(page, "data-rows-etag")

    # The page's own rows are what the rows URL sends: its very first poll is already conditional.
    sent = radiologist_client.get(ROWS, {"priority": "1"})
    assert sent.status_code == 200 and sent["ETag"] == etag
    assert audited(ROWS) == 1

    unchanged = radiologist_client.get(ROWS, {"priority": "1"}, HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged["ETag"] == etag and unchanged["Cache-Control"] == "no-store"
    assert audited(ROWS) == 1  # nothing was shown, so nothing is recorded

    # A new STAT study changes the rows: they are sent, with a new tag, and audited row by row.
    second = done_study(model, accession_number="ACC-POLL-2", priority=Priority.STAT)
    changed = radiologist_client.get(ROWS, {"priority": "1"}, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert "ACC-POLL-2" in changed.content.decode()
    assert set(AuditEvent.objects.filter(path=ROWS).values_list("object_id", flat=True)) == {
        str(first.id),
        str(second.id),
    }
    assert audited(ROWS) == 3


def test_a_tag_matches_only_the_same_rows_for_the_same_user(radiologist_client, client_for):
    done_study(make_aimodel(), accession_number="ACC-POLL-3")
    etag = radiologist_client.get(ROWS)["ETag"]

    # Other filters, other rows.
    assert radiologist_client.get(ROWS, {"priority": "1"}, HTTP_IF_NONE_MATCH=etag).status_code == 200
    # Another radiologist sees the same rows, but one user's tag never spares another's audit row.
    colleague = client_for(UserFactory(username="colleague", role=Role.RADIOLOGIST))
    assert colleague.get(ROWS, HTTP_IF_NONE_MATCH=etag).status_code == 200
    assert AuditEvent.objects.filter(path=ROWS, actor__username="colleague").count() == 1
    # A list of tags (as HTTP allows) matches when one of them does.
    assert radiologist_client.get(ROWS, HTTP_IF_NONE_MATCH=f'"other", {etag}').status_code == 304


def test_the_worklist_page_itself_is_audited_on_every_load(radiologist_client):
    study = done_study(make_aimodel(), accession_number="ACC-POLL-4")
    for _ in range(2):
        radiologist_client.get(WORKLIST)
    assert list(AuditEvent.objects.filter(path=WORKLIST).values_list("object_id", flat=True)) == [str(study.id)] * 2


def test_an_unchanged_study_results_poll_is_304_and_a_finished_result_is_sent(staff_client, study):
    prediction = make_prediction(make_image(study), make_aimodel(), status=PredictionStatus.RUNNING)
    results = reverse("pages:study-results", args=[study.id])
    page = staff_client.get(reverse("pages:study-detail", args=[study.id])).content.decode()
    etag = embedded_etag(page, "data-results-etag")

    unchanged = staff_client.get(results, HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert audited(results) == 0

    Prediction.objects.filter(id=prediction.id).update(
        status=PredictionStatus.SUCCEEDED,
        label="normal",
        confidence=0.6,
        probabilities={"normal": 0.6, "pneumonia": 0.4},
    )
    sent = staff_client.get(results, HTTP_IF_NONE_MATCH=etag)
    assert sent.status_code == 200 and sent["ETag"] != etag
    assert 'data-pending="false"' in sent.content.decode()
    assert list(AuditEvent.objects.filter(path=results).values_list("object_id", "detail")) == [
        (str(study.id), "results")
    ]
