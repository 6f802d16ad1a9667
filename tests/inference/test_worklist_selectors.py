"""The worklist's search, filters and sorts (inference.selectors.studies_worklist_filtered)."""

import datetime
from datetime import timedelta

import pytest
from django.utils import timezone

from imaging.models import Priority, Study, StudyStatus
from inference.forms import WORKLIST_SORT_LABELS, WorklistFilterForm
from inference.selectors import (
    WORKLIST_SORTS,
    WorklistQuery,
    studies_worklist,
    studies_worklist_filtered,
    worklist_model_names,
    worklist_order,
)
from inference.study_status import study_refresh_status
from tests.factories import PatientFactory, StudyFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = pytest.mark.django_db


def waiting(model, *, days_ago: float = 0, **fields) -> Study:
    """A study whose one image has a finished AI result awaiting review."""
    study = StudyFactory(**fields)
    if days_ago:
        Study.objects.filter(id=study.id).update(created_at=timezone.now() - timedelta(days=days_ago))
    make_prediction(make_image(study, name=f"{study.accession_number}.png"), model)
    study_refresh_status(study_id=study.id)
    study.refresh_from_db()
    return study


def ids(**query) -> list:
    return [study.id for study in studies_worklist_filtered(query=WorklistQuery(**query))]


@pytest.fixture
def model(db):
    return make_aimodel()


@pytest.fixture
def three(model):
    okafor = waiting(
        model,
        patient=PatientFactory(family_name="Okafor", given_name="Ada", mrn="MRN-0042"),
        accession_number="ACC-1001",
    )
    okoro = waiting(
        model,
        patient=PatientFactory(family_name="Okoro", given_name="Chidi", mrn="MRN-0420"),
        accession_number="ACC-1002",
    )
    lind = waiting(
        model,
        patient=PatientFactory(family_name="Lindqvist", given_name="Ada", mrn="X-77"),
        accession_number="ACC-2001",
    )
    return okafor, okoro, lind


def test_search_matches_every_word_of_the_name_in_either_name_field(three):
    okafor, okoro, lind = three
    assert set(ids(search="oka")) == {okafor.id}
    assert set(ids(search="Ada")) == {okafor.id, lind.id}
    # "FAMILY, Given" as the list shows it finds the one patient, not everyone called Ada.
    assert ids(search="OKAFOR, Ada") == [okafor.id]
    assert ids(search="ada okoro") == []


def test_search_matches_mrn_exactly_or_by_its_start_and_accession_exactly(three):
    okafor, okoro, lind = three
    assert ids(search="mrn-0042") == [okafor.id]
    assert set(ids(search="MRN-04")) == {okoro.id}
    assert ids(search="acc-2001") == [lind.id]
    assert ids(search="ACC-200") == []  # an accession number is one exam: no partial matches
    assert set(ids(search="   ")) == {okafor.id, okoro.id, lind.id}


def test_reviewed_studies_are_found_by_mrn_or_accession_but_not_by_name(three):
    okafor, _, _ = three
    Study.objects.filter(id=okafor.id).update(status=StudyStatus.REVIEWED)
    reviewed = (StudyStatus.REVIEWED,)
    assert ids(statuses=reviewed, search="Okafor") == []
    assert ids(statuses=reviewed, search="MRN-0042") == [okafor.id]
    assert ids(statuses=reviewed, search="MRN-00") == []  # a whole MRN: no browsing by its start
    assert ids(statuses=reviewed, search="ACC-1001") == [okafor.id]
    assert WorklistQuery(statuses=reviewed).names_searchable is False
    assert WorklistQuery().names_searchable is True


def test_a_broad_search_matches_the_same_studies_inside_the_list(three, monkeypatch):
    okafor, okoro, lind = three
    narrow = {term: set(ids(search=term)) for term in ("Ada", "oko", "MRN-0", "ACC-1002")}
    monkeypatch.setattr("inference.selectors.WORKLIST_SEARCH_PATIENTS", 1)
    assert {term: set(ids(search=term)) for term in narrow} == narrow
    assert narrow["Ada"] == {okafor.id, lind.id} and narrow["ACC-1002"] == {okoro.id}


def test_filters_by_priority_modality_and_model(model):
    other = make_aimodel(name="cxr-tb", display_name="Chest X-ray TB")
    stat = waiting(model, priority=Priority.STAT, modality="CR")
    routine = waiting(model, modality="DX")
    tb = waiting(other, priority=Priority.STAT, modality="DX")
    assert set(ids(priority=Priority.STAT)) == {stat.id, tb.id}
    assert ids(priority=Priority.ROUTINE) == [routine.id]
    assert ids(modality="CR") == [stat.id]
    assert ids(model_name="cxr-tb") == [tb.id]
    assert set(ids(model_name="cxr-pneumonia")) == {stat.id, routine.id}
    assert ids(priority=Priority.STAT, modality="DX", model_name="cxr-tb") == [tb.id]


def test_received_dates_are_whole_local_days_inclusive(model):
    today = timezone.localdate()
    now = waiting(model)
    three_days = waiting(model, days_ago=3)
    ten_days = waiting(model, days_ago=10)
    day = datetime.timedelta(days=1)
    assert set(ids(received_from=today - 3 * day)) == {now.id, three_days.id}
    assert set(ids(received_to=today - 3 * day)) == {three_days.id, ten_days.id}
    assert ids(received_from=today - 3 * day, received_to=today - 3 * day) == [three_days.id]
    assert ids(received_from=today, received_to=today) == [now.id]


def test_default_order_is_priority_then_flag_then_longest_waiting(model):
    old = waiting(model, days_ago=2)
    new = waiting(model, days_ago=1)
    stat = waiting(model, priority=Priority.STAT)
    assert ids() == [stat.id, old.id, new.id]
    assert ids(sort="") == ids(sort="no-such-column") == ids(sort="-") == [stat.id, old.id, new.id]


def test_every_column_sorts_both_ways_and_breaks_ties_in_triage_order(model):
    a = waiting(model, patient=PatientFactory(family_name="Adams"), accession_number="ACC-3", days_ago=2)
    b = waiting(model, patient=PatientFactory(family_name="Brown"), accession_number="ACC-1", days_ago=1)
    c = waiting(model, patient=PatientFactory(family_name="Clark"), accession_number="ACC-2", priority=Priority.STAT)
    assert ids(sort="patient") == [a.id, b.id, c.id]
    assert ids(sort="-patient") == [c.id, b.id, a.id]
    assert ids(sort="accession") == [b.id, c.id, a.id]
    assert ids(sort="-waiting") == [a.id, b.id, c.id]  # longest wait first
    assert ids(sort="waiting") == [c.id, b.id, a.id]
    assert ids(sort="-priority") == [a.id, b.id, c.id]  # routine first; equal priorities oldest first
    # Equal values keep the triage order, so a poll never reshuffles them.
    assert ids(sort="status") == ids(sort="-status") == ids()
    for key in WORKLIST_SORTS:
        assert len(ids(sort=key)) == len(ids(sort=f"-{key}")) == 3


@pytest.mark.parametrize("sort", ["patient", "-patient"])
def test_patient_sort_reads_each_studys_patient_in_the_joined_order(model, sort, django_assert_num_queries):
    """The backlog sorted by patient looks each study's patient up instead of joining the register;
    the order is the joined one to the last tie (given name, MRN, then priority and waiting)."""
    smith_al_2 = PatientFactory(family_name="Smith", given_name="Al", mrn="M-2")
    smith_al_1 = PatientFactory(family_name="Smith", given_name="Al", mrn="M-1")
    smith_bo = PatientFactory(family_name="Smith", given_name="Bo", mrn="M-0")
    adams = PatientFactory(family_name="Adams", given_name="Zed", mrn="M-9")
    for patient in (smith_al_2, smith_al_1, smith_bo, adams, smith_al_1):
        waiting(model, patient=patient, days_ago=1)
    waiting(model, patient=smith_al_1, days_ago=2)
    waiting(model, patient=smith_al_1, priority=Priority.STAT)
    StudyFactory(patient=PatientFactory(family_name="Aaron"), status=StudyStatus.REVIEWED)
    joined = studies_worklist(statuses=(StudyStatus.AI_DONE,)).order_by(*worklist_order(sort))
    expected = [study.id for study in joined]
    assert len(expected) == 7
    with django_assert_num_queries(2):  # the page's studies, then their patients
        rows = list(studies_worklist_filtered(query=WorklistQuery(sort=sort)))
        names = [(study.patient.family_name, study.patient.given_name, study.patient.mrn) for study in rows]
    assert [study.id for study in rows] == expected
    assert names == sorted(names, reverse=sort.startswith("-"))
    # Beyond the backlog (the reviewed studies: the whole history) the register's name order is walked.
    reviewed = studies_worklist_filtered(query=WorklistQuery(statuses=(StudyStatus.REVIEWED,), sort=sort))
    assert "patients_patient" in str(reviewed.query).split("ORDER BY")[0]
    assert [study.patient.family_name for study in reviewed] == ["Aaron"]


def test_sort_whitelist_is_the_forms_and_nothing_else_reaches_order_by():
    assert set(WORKLIST_SORT_LABELS) == set(WORKLIST_SORTS)
    default = worklist_order("")
    assert worklist_order("patient__birth_date") == default
    assert worklist_order("-id; DROP TABLE x") == default
    assert worklist_order("--priority") == default


def test_model_names_list_each_name_once_with_its_newest_display_name(model):
    make_aimodel(name="cxr-pneumonia", version="2.0.0", display_name="Chest X-ray pneumonia v2")
    make_aimodel(name="derm", version="1.0.0", display_name="Skin lesions", body_part="SKIN")
    assert worklist_model_names() == [("cxr-pneumonia", "Chest X-ray pneumonia v2"), ("derm", "Skin lesions")]


def test_form_keeps_valid_parts_and_reports_the_invalid_ones(model):
    form = WorklistFilterForm(
        {
            "q": " Okafor ",
            "priority": "9",
            "sort": "patient__mrn",
            "received_from": "2026-02-30",
            "received_to": "2026-01-10",
            "model": "cxr-pneumonia",
        }
    )
    query = form.worklist_query()
    assert query.search == "Okafor"
    assert query.priority is None and query.sort == "" and query.received_from is None
    assert query.received_to == datetime.date(2026, 1, 10)
    assert query.model_name == "cxr-pneumonia"
    assert query.statuses == (StudyStatus.AI_DONE,)
    assert set(form.errors) == {"priority", "sort", "received_from"}
    assert form.errors["received_from"] == ["Enter the date as YYYY-MM-DD."]
    assert "triage order" in form.errors["sort"][0]


def test_form_refuses_a_date_range_that_ends_before_it_starts():
    form = WorklistFilterForm({"received_from": "2026-03-10", "received_to": "2026-03-01"})
    query = form.worklist_query()
    assert form.errors["received_to"] == ["The “to” date is before the “from” date."]
    assert query.received_from == datetime.date(2026, 3, 10) and query.received_to is None


def test_an_unbound_form_is_the_default_worklist():
    assert WorklistFilterForm().worklist_query() == WorklistQuery()
