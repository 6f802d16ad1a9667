"""The worklist page: search, filters, sortable headers, its polled rows fragment, and "save and next"."""

import datetime
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.template import engines
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from imaging.models import Priority, Study
from inference.models import Review
from tests.factories import PatientFactory
from tests.web.conftest import make_aimodel
from tests.web.test_query_counts import MAX_QUERIES, count_queries
from tests.web.test_review import done_study

pytestmark = pytest.mark.django_db

WORKLIST = reverse("pages:worklist")
ROWS = reverse("pages:worklist-rows")


def listed(client, url=WORKLIST, **params) -> list:
    response = client.get(url, params)
    assert response.status_code == 200
    return [study.id for study in response.context["page"].object_list]


@pytest.fixture
def model(db):
    return make_aimodel()


def test_one_box_searches_patient_name_mrn_and_accession(radiologist_client, model):
    okafor = done_study(model, patient=PatientFactory(family_name="Okafor", mrn="MRN-0042"), accession_number="A-1")
    other = done_study(model, patient=PatientFactory(family_name="Berg", mrn="MRN-0777"), accession_number="A-2")
    assert listed(radiologist_client, q="okafor") == [okafor.id]
    assert listed(radiologist_client, q="MRN-0777") == [other.id]
    assert listed(radiologist_client, q="a-1") == [okafor.id]
    html = radiologist_client.get(WORKLIST, {"q": "nobody-like-this"}).content.decode()
    assert "No study matches this search and these filters." in html
    assert 'value="nobody-like-this"' in html  # the box keeps what was typed


def test_filters_for_priority_model_and_received_date_narrow_the_list(radiologist_client, model):
    stat = done_study(model, priority=Priority.STAT)
    routine = done_study(model)
    tb = done_study(make_aimodel(name="cxr-tb", display_name="Chest X-ray TB"), priority=Priority.STAT)
    assert set(listed(radiologist_client, priority="1")) == {stat.id, tb.id}
    assert listed(radiologist_client, priority="1", model="cxr-tb") == [tb.id]
    assert set(listed(radiologist_client, model="cxr-pneumonia")) == {stat.id, routine.id}
    assert listed(radiologist_client, received_from="2000-01-01", received_to="2000-01-02") == []
    html = radiologist_client.get(WORKLIST).content.decode()
    assert '<option value="cxr-tb">Chest X-ray TB</option>' in html
    assert "Received from" in html and "Received to" in html


def test_bad_parameters_are_reported_next_to_their_control_and_the_rest_still_applies(radiologist_client, model):
    stat = done_study(model, priority=Priority.STAT)
    done_study(model)
    response = radiologist_client.get(
        WORKLIST, {"priority": "1", "sort": "patient__birth_date", "received_from": "yesterday", "page": "zz"}
    )
    assert response.status_code == 200
    assert [s.id for s in response.context["page"].object_list] == [stat.id]
    html = response.content.decode()
    assert 'id="id_received_from_error"' in html and "Enter the date as YYYY-MM-DD." in html
    [field] = re.findall(r'<input[^>]*id="id_received_from"[^>]*>', html)
    assert 'aria-describedby="id_received_from_error"' in field and 'aria-invalid="true"' in field
    assert "it is shown in triage order" in html


def test_headers_sort_the_list_and_say_how_it_is_sorted(radiologist_client, model):
    adams = done_study(model, patient=PatientFactory(family_name="Adams"))
    clark = done_study(model, patient=PatientFactory(family_name="Clark"), priority=Priority.STAT)
    default = radiologist_client.get(WORKLIST, {"modality": "DX"})
    headers = {h["key"]: h for h in default.context["headers"]}
    # Unsorted, the list is in triage order, which starts with priority.
    assert headers["priority"]["aria_sort"] == "ascending"
    assert headers["patient"]["aria_sort"] is None
    link = parse_qs(urlsplit(headers["patient"]["url"]).query)
    assert link == {"modality": ["DX"], "sort": ["patient"]}  # the filter is kept
    assert parse_qs(urlsplit(headers["waiting"]["url"]).query)["sort"] == ["-waiting"]  # longest first

    response = radiologist_client.get(WORKLIST, {"sort": "patient", "page": "1"})
    assert [s.id for s in response.context["page"].object_list] == [adams.id, clark.id]
    headers = {h["key"]: h for h in response.context["headers"]}
    assert headers["patient"]["aria_sort"] == "ascending"
    assert headers["priority"]["aria_sort"] is None
    assert parse_qs(urlsplit(headers["patient"]["url"]).query) == {"sort": ["-patient"]}  # no page: starts over
    html = response.content.decode()
    assert re.search(r'<th scope="col" aria-sort="ascending"><a class="sort-link" href="\?sort=-patient"', html)
    assert html.count("aria-sort=") == 1
    assert [s.id for s in radiologist_client.get(WORKLIST, {"sort": "-patient"}).context["page"].object_list] == [
        clark.id,
        adams.id,
    ]


def test_rows_fragment_has_the_same_rows_is_not_cached_and_is_audited(radiologist_client, radiologist_user, model):
    first = done_study(model, accession_number="ACC-FRAG-1", priority=Priority.STAT)
    done_study(model, accession_number="ACC-FRAG-2", modality="CR")
    page = radiologist_client.get(WORKLIST, {"modality": "DX"})
    assert f'data-rows-url="{ROWS}?modality=DX"' in page.content.decode()
    assert 'data-poll-seconds="15"' in page.content.decode()

    response = radiologist_client.get(ROWS, {"modality": "DX"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    assert "<html" not in html and "<h1" not in html
    assert f'data-study-id="{first.id}"' in html and 'data-priority="1"' in html
    assert "ACC-FRAG-2" not in html
    audited = AuditEvent.objects.filter(path=ROWS).values_list("object_id", "patient_id", "detail", "actor")
    assert list(audited) == [(str(first.id), first.patient_id, "worklist rows", radiologist_user.id)]


def test_poll_interval_comes_from_settings(radiologist_client, settings):
    settings.MEDPORTAL_WORKLIST_POLL_SECONDS = 2
    assert 'data-poll-seconds="2"' in radiologist_client.get(WORKLIST).content.decode()


def test_staff_may_open_neither_the_worklist_nor_its_rows(staff_client, client):
    assert staff_client.get(WORKLIST).status_code == 403
    assert staff_client.get(ROWS).status_code == 403
    assert client.get(ROWS).status_code == 302  # signed out: to the login form


def test_save_and_next_keeps_search_sort_and_filters(radiologist_client, model):
    current = done_study(model, patient=PatientFactory(family_name="Okafor"), priority=Priority.URGENT)
    done_study(model, patient=PatientFactory(family_name="Berg"), priority=Priority.STAT)  # not searched for
    older = done_study(model, patient=PatientFactory(family_name="Okafor"), priority=Priority.STAT)
    newest = done_study(model, patient=PatientFactory(family_name="Okafor"), priority=Priority.STAT)
    prediction = current.images.get().predictions.get()
    carried = "q=okafor&priority=1&sort=waiting&model=cxr-pneumonia"

    # The current study is not STAT: the STAT filter applies to what comes next, newest first.
    response = radiologist_client.post(
        reverse("pages:review", args=[current.id]),
        {"prediction": prediction.id, "decision": "agree", "worklist_query": carried},
        HTTP_ACCEPT="application/json",
    )
    assert response.json()["next"] == reverse("pages:review", args=[newest.id]) + "?" + carried
    assert Review.objects.filter(prediction=prediction).exists()
    assert older.id != newest.id


def test_rows_fragment_queries_stay_bounded(radiologist_client, model):
    search = {"q": "okafor", "priority": "3", "model": "cxr-pneumonia", "sort": "-patient"}
    done_study(model, patient=PatientFactory(family_name="Okafor"))
    few = count_queries(radiologist_client, ROWS)
    few_searched = count_queries(radiologist_client, ROWS, **search)
    for _ in range(20):
        done_study(model, patient=PatientFactory(family_name="Okafor"))
    many = count_queries(radiologist_client, ROWS)
    many_searched = count_queries(radiologist_client, ROWS, **search)
    dated = count_queries(radiologist_client, WORKLIST, received_from="2000-01-01", sort="images")
    assert few == many <= MAX_QUERIES
    # A search reads the matching patients first, and a page sorted by patient its rows' patients
    # after them: one query more each, however many rows.
    assert few_searched == many_searched == few + 2
    assert dated <= MAX_QUERIES


def test_rows_show_what_the_template_filters_would(radiologist_client, model):
    """The row texts are worked out in the view; each equals the filter or tag it stands for."""
    fresh = done_study(model, priority=Priority.STAT)
    old = done_study(model)
    Study.objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(days=3, hours=4))
    cells = engines["django"].from_string(
        "{% load portal %}{% for study in studies %}|{{ study.get_priority_display }}|{{ study.get_modality_display }}"
        "|{{ study.get_body_part_display }}|{{ study.get_status_display }}|{% url 'pages:review' study.id %}"
        "|{{ study.created_at|date:'Y-m-d H:i' }}|{{ study.created_at|waiting }}|{{ study.created_at|overdue }}"
        "{% endfor %}"
    )
    response = radiologist_client.get(WORKLIST, {"status": "ai_done"})
    rows = response.context["rows"]
    studies = [row.study for row in rows]
    assert {study.id for study in studies} == {fresh.id, old.id}
    expected = cells.render({"studies": studies})
    shown = "".join(
        f"|{row.priority}|{row.modality}|{row.body_part}|{row.status}|{row.review_url}"
        f"|{row.registered}|{row.waiting}|{row.overdue}"
        for row in rows
    )
    assert shown == expected
    assert [row.overdue for row in rows if row.study.id == old.id] == [True]
    assert [row.overdue for row in rows if row.study.id == fresh.id] == [False]
