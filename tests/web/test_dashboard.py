import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from imaging.models import Priority, StudyStatus
from inference import selectors
from inference.models import PredictionStatus, Review
from inference.study_status import study_refresh_status
from tests.factories import StudyFactory, UserFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = pytest.mark.django_db


def test_staff_dashboard_lists_todays_studies_with_a_status_chart(staff_client):
    StudyFactory(accession_number="ACC-TODAY-1")
    StudyFactory(accession_number="ACC-TODAY-2", status=StudyStatus.AI_PENDING)
    response = staff_client.get(reverse("pages:home"))
    html = response.content.decode()
    assert "ACC-TODAY-1" in html and "ACC-TODAY-2" in html
    assert "Today's 2 studies by status" in html
    assert "Your worklist" not in html and "AI operations" not in html


def test_radiologist_dashboard_shows_worklist_size_and_oldest(radiologist_client):
    model = make_aimodel()
    for accession, priority in (("ACC-OLD", Priority.ROUTINE), ("ACC-NEW", Priority.STAT)):
        study = StudyFactory(accession_number=accession, priority=priority)
        make_prediction(make_image(study, name=accession), model)
        study_refresh_status(study_id=study.id)
    response = radiologist_client.get(reverse("pages:home"))
    html = response.content.decode()
    assert response.context["worklist"]["size"] == 2
    assert response.context["worklist"]["oldest"].accession_number == "ACC-OLD"
    assert 'data-stat="worklist-size">2<' in html and "oldest waiting" in html
    assert "Studies awaiting review by priority" in html
    assert "Today's studies" not in html


def test_admin_dashboard_shows_queue_failures_and_agreement(client_for, admin_user):
    radiologist = UserFactory(role="radiologist")
    model = make_aimodel()
    study = StudyFactory()
    make_prediction(make_image(study, name="q"), model, status=PredictionStatus.QUEUED)
    make_prediction(make_image(study, name="r"), model, status=PredictionStatus.RUNNING)
    make_prediction(make_image(study, name="f"), model, status=PredictionStatus.FAILED, error="Weights missing.")
    for i, decision in enumerate(["agree", "agree", "agree", "override"]):
        prediction = make_prediction(make_image(study, name=f"d{i}"), model, label="pneumonia")
        Review.objects.create(
            prediction=prediction,
            decision=decision,
            final_label="pneumonia" if decision == "agree" else "normal",
            reviewer=radiologist,
        )

    response = client_for(admin_user).get(reverse("pages:home"))
    html = response.content.decode()
    assert 'data-stat="queue-depth">2<' in html
    assert 'data-stat="failed">1<' in html and "Weights missing." in html
    (row,) = response.context["agreement"]
    assert (row["model"], row["agreed"], row["total"], row["rate"]) == ("cxr-pneumonia v1.2.0", 3, 4, 0.75)
    assert "Radiologist agreement rate per model version" in html and "75.0%" in html and "3/4 reviews" in html


def test_admin_dashboard_and_study_page_show_the_expected_wait(client, admin_user, settings):
    settings.MEDPORTAL_ASSUMED_THROUGHPUT = 2.0
    study = StudyFactory()
    model = make_aimodel()
    for name in ("a", "b", "c", "d"):
        make_prediction(make_image(study, name=name), model, status=PredictionStatus.QUEUED)
    cache.clear()
    client.force_login(admin_user)
    dashboard = client.get("/").content.decode()
    assert 'data-stat="expected-wait">about 2 s<' in dashboard
    page = client.get(f"/studies/{study.id}/").content.decode()
    assert "4 images in the AI queue; expected wait about 2 s." in page


def _stat(html: str, name: str) -> str:
    return html.split(f'data-stat="{name}">', 1)[1].split("<", 1)[0]


def test_dashboard_counts_are_shared_for_a_few_seconds_and_the_page_says_how_old(client_for, admin_user, monkeypatch):
    """The counts are read once for every dashboard within ``DASHBOARD_COUNTS_SECONDS``; the
    studies and results the page names (the oldest waiting study, the latest failures) are not."""
    client = client_for(admin_user)
    model = make_aimodel()
    make_prediction(make_image(StudyFactory(), name="q"), model, status=PredictionStatus.QUEUED)
    first = client.get(reverse("pages:home")).content.decode()
    assert _stat(first, "queue-depth") == "1" and _stat(first, "failed") == "0"
    assert f"at most {selectors.DASHBOARD_COUNTS_SECONDS} seconds old" in first

    make_prediction(make_image(StudyFactory(), name="f"), model, status=PredictionStatus.FAILED, error="Disk full.")
    with CaptureQueriesContext(connection) as queries:
        second = client.get(reverse("pages:home")).content.decode()
    assert _stat(second, "failed") == "0"  # counted a moment ago
    assert "Disk full." in second  # the failure itself is listed at once
    counting = ("SELECT COUNT(", 'SELECT "imaging_study"."priority"', 'SELECT "inference_aimodel"."name"')
    assert not [q["sql"] for q in queries.captured_queries if q["sql"].startswith(counting)]

    later = timezone.now() + timezone.timedelta(seconds=selectors.DASHBOARD_COUNTS_SECONDS + 1)
    monkeypatch.setattr(selectors.timezone, "now", lambda: later)
    third = client.get(reverse("pages:home")).content.decode()
    assert _stat(third, "failed") == "1" and _stat(third, "queue-depth") == "1"
    assert f"Counts as of {timezone.localtime(later):%H:%M:%S}" in third


def test_images_a_model_declined_are_not_counted_or_listed_as_failures(client_for, admin_user, staff_user):
    model = make_aimodel()
    study = StudyFactory(accession_number="ACC-DECLINED")
    declined = "Not run: this image does not look like the chest X-ray images this model was trained on."
    make_prediction(make_image(study, name="d"), model, status=PredictionStatus.FAILED, error=declined)
    make_prediction(make_image(study, name="f"), model, status=PredictionStatus.FAILED, error="Weights missing.")

    html = client_for(admin_user).get(reverse("pages:home")).content.decode()
    assert 'data-stat="failed">1<' in html
    assert "1 image not run by a model's own checks" in html
    assert "Weights missing." in html and "does not look like" not in html

    (row,) = selectors.studies_today(day=timezone.localdate())
    assert row.failed_count == 1


def test_every_study_a_dashboard_names_is_audited_once_in_one_statement(client_for, admin_user):
    """An admin sees all three panels: today's studies and the oldest waiting one are one INSERT."""
    model = make_aimodel()
    waiting = StudyFactory(accession_number="ACC-WAITING")
    make_prediction(make_image(waiting, name="w"), model)
    study_refresh_status(study_id=waiting.id)
    older = StudyFactory(accession_number="ACC-OLDER")
    make_prediction(make_image(older, name="o"), model)
    study_refresh_status(study_id=older.id)
    StudyFactory.create_batch(3)
    cache.clear()
    client = client_for(admin_user)

    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("pages:home"))
    assert response.status_code == 200
    inserts = [q["sql"] for q in captured.captured_queries if q["sql"].startswith('INSERT INTO "audit_auditevent"')]
    assert len(inserts) == 1
    audited = list(AuditEvent.objects.filter(detail="dashboard").values_list("object_id", flat=True))
    shown = {str(s.id) for s in response.context["studies_today"]} | {str(response.context["worklist"]["oldest"].id)}
    assert sorted(audited) == sorted(shown) and len(audited) == 5  # the oldest is also one of today's
