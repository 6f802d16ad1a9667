"""Searches that must stay fast at hospital scale: same answers on every backend, and on PostgreSQL
the plans that keep them fast (read with EXPLAIN, sequential scans priced out so the plan shows
which index the query can use rather than what a handful of test rows make cheapest)."""

import datetime
import re

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from api import pagination
from imaging.dicom.selectors import dicom_study_search
from imaging.models import Image
from inference.apis import PredictionListApi
from inference.filters import PredictionFilter
from inference.selectors import WorklistQuery, studies_worklist, studies_worklist_filtered
from inference.services import review_create
from patients.models import Patient
from patients.selectors import patient_list
from tests.api.helpers import make_image, make_prediction
from tests.factories import PatientFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="trigram indexes are PostgreSQL's")


def _plan(queryset, *, priced_out=("seqscan", "bitmapscan")) -> str:
    """EXPLAIN with the ways a handful of rows is cheapest to read (a sequential scan, a bitmap of
    an index that does not give the order) priced out: the plan then shows which index the query can
    use, whatever rows earlier tests left in the table's size estimates."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Statistics left behind by earlier tests in the same database would otherwise steer the
        # planner; fresh ones make the plan depend on this test's rows alone.
        cursor.execute("ANALYZE")
        for method in priced_out:
            cursor.execute(f"SET LOCAL enable_{method} = off")
        sql, params = queryset.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.fixture
def register():
    names = [("Smith", "Zoe"), ("smithson", "Al"), ("Adams", "Smita"), ("Baker", "Ann"), ("Smith", "Al"), ("Xu", "Li")]
    return [PatientFactory(family_name=family, given_name=given) for family, given in names]


@pytest.mark.parametrize("term", ["smi", "Sm", "Li", "MRN"])
def test_search_lists_matches_in_name_order(register, term):
    """A word short enough to skip the trigram indexes and a longer one give the same name order."""
    found = list(patient_list(search=term))
    expected = sorted(
        (
            p
            for p in Patient.objects.all()
            if p.mrn.upper().startswith(term.upper())
            or term.upper() in p.family_name.upper()
            or term.upper() in p.given_name.upper()
        ),
        key=lambda p: (p.family_name, p.given_name, p.mrn),
    )
    assert found == expected
    assert found


def test_api_search_keeps_the_name_order_and_an_explicit_ordering(register, client_for_role):
    client = client_for_role("staff")
    rows = client.get("/api/v1/patients/", {"search": "smi"}).json()["results"]
    assert [(r["family_name"], r["given_name"]) for r in rows] == [
        ("Adams", "Smita"),
        ("Smith", "Al"),
        ("Smith", "Zoe"),
        ("smithson", "Al"),
    ]
    rows = client.get("/api/v1/patients/", {"search": "smi", "ordering": "-family_name"}).json()["results"]
    assert [r["family_name"] for r in rows][0] == "smithson"


@pytest.mark.services
@on_postgresql
def test_name_search_reads_the_trigram_indexes_not_the_whole_name_order(register):
    """Ordered by the plain columns, a search for "Smi" walked the name index through 80% of the
    register, filtering every row (177 ms at 50,000 patients); the matches are collected from the
    trigram indexes and sorted instead (6 ms)."""
    plan = _plan(patient_list(search="Smi")[:25], priced_out=("seqscan",))
    assert "patient_family_name_trgm" in plan
    assert "patient_given_name_trgm" in plan
    assert "patient_name_order" not in plan
    # A two-letter word has no trigram: the name index's order is the quickest way to a page.
    assert "patient_name_order" in _plan(patient_list(search="Sm")[:25], priced_out=("seqscan",))


def _counts(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT COUNT(*)")]


def test_a_page_count_selects_only_the_key_not_the_rows_annotations(client_for_role, monkeypatch):
    """The studies list shows an image count per row (a subquery); counting the rows must not run it."""
    monkeypatch.setattr(pagination, "EXACT_COUNT_LIMIT", 3)
    for _ in range(5):
        make_image(StudyFactory())
    client = client_for_role("staff")
    client.get("/api/v1/models/")
    with CaptureQueriesContext(connection) as queries:
        body = client.get("/api/v1/studies/", {"page_size": 2}).json()
    assert [row["image_count"] for row in body["results"]] == [1, 1]
    counts = _counts(queries)
    assert counts
    assert all("imaging_image" not in sql for sql in counts), counts
    if connection.vendor != "postgresql":
        assert body["count"] == 5  # no estimate elsewhere: an exact count, still without the subquery


def test_study_search_finds_by_accession_mrn_and_description_without_joining_patients(client_for_role):
    by_mrn = StudyFactory(patient=PatientFactory(mrn="BRAIN-7"))
    by_description = StudyFactory(description="MRI brain with contrast")
    by_accession = StudyFactory(accession_number="brain-7")
    StudyFactory(description="Chest PA")
    client = client_for_role("staff")
    client.get("/api/v1/models/")
    with CaptureQueriesContext(connection) as queries:
        rows = client.get("/api/v1/studies/", {"search": "brain-7"}).json()["results"]
    assert {row["id"] for row in rows} == {str(by_mrn.id), str(by_accession.id)}
    rows = client.get("/api/v1/studies/", {"search": "BRAIN"}).json()["results"]
    assert [row["id"] for row in rows] == [str(by_description.id)]
    # An OR across a join to the patients made PostgreSQL join every study to its patient first.
    assert all('JOIN "patients_patient"' not in sql for sql in _counts(queries))


@pytest.mark.services
@on_postgresql
def test_dicom_study_search_by_patient_reads_each_patients_dicom_studies():
    """QIDO-RS and C-FIND by patient name found the matching patients, then hashed every DICOM
    study to join them (18 ms at 30,000 DICOM studies); a partial index on the DICOM studies'
    patient lets it look up each matching patient's few studies (1.5 ms)."""
    smith = PatientFactory(family_name="Smith")
    dicom = StudyFactory(patient=smith, study_instance_uid="1.2.3.4")
    StudyFactory(patient=smith)  # not from DICOM
    StudyFactory(patient=PatientFactory(family_name="Jones"), study_instance_uid="1.2.3.5")
    found = dicom_study_search(patient_name="Smi*")
    assert [study.id for study in found] == [dicom.id]
    plan = _plan(dicom_study_search(patient_name="Smi*")[:100])
    assert "study_dicom_patient" in plan, plan


@pytest.mark.services
@on_postgresql
@pytest.mark.parametrize(
    ("statuses", "index"),
    # The page's own index at scale; with three rows the whole backlog's, filtered, is as cheap.
    [(("ai_done",), r"study_backlog_(status|flag)_triage"), (None, r"study_backlog_flag_triage")],
    ids=["page", "api"],
)
def test_worklist_is_read_in_triage_order_from_a_backlog_index(statuses, index):
    """The AI flag is the study's own column, so the triage order (priority, flag, longest waiting)
    is an index of the backlog: the page (one status) and the API (the whole backlog) read a page,
    however deep, in order, without a sort of the backlog or a look-up of any result (page 10 of
    1,000 studies awaiting review: 27 ms of SQL with the flag looked up, 1.4 ms now)."""
    stat, routine, flagged = (StudyFactory(status="ai_done", priority=priority) for priority in (1, 3, 3))
    make_prediction(make_image(flagged, color=1))
    rows = list(studies_worklist(statuses=statuses))
    assert [(row.id, row.ai_flagged) for row in rows] == [(stat.id, False), (flagged.id, True), (routine.id, False)]
    # With three rows a sort is cheapest: priced out, the plan shows the order comes from an index.
    plan = _plan(
        studies_worklist(statuses=statuses)[:25], priced_out=("seqscan", "bitmapscan", "sort", "incremental_sort")
    )
    assert re.search(index, plan), plan
    assert "Sort" not in plan and "inference_prediction" not in plan, plan


@pytest.mark.services
@on_postgresql
@pytest.mark.parametrize("sort", ["patient", "-patient"])
def test_worklist_sorted_by_patient_reads_the_backlog_not_the_register(sort):
    """Sorted by patient, PostgreSQL walked the patients in name order until 25 had a study awaiting
    review: 1.7 ms of SQL with 50,000 patients, 109 ms with 500,000, for the same backlog. Each
    backlog study's patient is looked up by its key instead and the backlog sorted, so the plan
    neither walks nor hashes the register (9,500 buffers at 50,000 patients, 12,600 at 500,000)."""
    StudyFactory(status="reviewed", patient=PatientFactory(family_name="Adams"))
    waiting = StudyFactory(status="ai_done", patient=PatientFactory(family_name="Baker"))
    query = WorklistQuery(sort=sort)
    assert [study.id for study in studies_worklist_filtered(query=query)] == [waiting.id]
    plan = _plan(studies_worklist_filtered(query=query)[:25])
    assert "patient_name_order" not in plan and "Hash" not in plan, plan
    patient_reads = [line for line in plan.splitlines() if "on patients_patient" in line]
    assert patient_reads and all("patients_patient_pkey" in line for line in patient_reads), plan
    assert plan.count("Index Cond: (id = imaging_study.patient_id)") == len(patient_reads), plan


@pytest.mark.services
@on_postgresql
@pytest.mark.parametrize("value", ["20240301-", "-20240301", "20240201-20240301", "20240301"])
def test_dicom_study_search_by_study_date_reads_the_dicom_date_index(value):
    """StudyDate, a date or a range, is a plain comparison on the column: QIDO-RS reads a date
    index from the first date in range in its own order (newest first) and stops at the page
    (``study_dicom_date`` on the seeded database: 1 ms of SQL for a month of studies)."""
    dates = {"old": datetime.date(2024, 1, 15), "in": datetime.date(2024, 3, 1), "new": datetime.date(2024, 3, 20)}
    studies = {
        key: StudyFactory(study_date=day, study_instance_uid=f"1.2.3.2{n}")
        for n, (key, day) in enumerate(dates.items())
    }
    expected = {
        "20240301-": ["new", "in"],
        "-20240301": ["in", "old"],
        "20240201-20240301": ["in"],
        "20240301": ["in"],
    }[value]
    assert [study.id for study in dicom_study_search(study_date=value)] == [studies[key].id for key in expected]
    # With three studies (and the dead rows of earlier tests in the table's size) another index and
    # a sort can be cheapest: priced out, the plan shows the list's order read from a date index.
    plan = _plan(
        dicom_study_search(study_date=value)[:101],
        priced_out=("seqscan", "bitmapscan", "sort", "incremental_sort"),
    )
    # The DICOM studies' own date index at scale; with a handful of rows the one of every study
    # (``study_date_created``) serves as well: either is read from the range, in order.
    assert re.search(r"Index Cond: \(+study_date", plan) and "Sort" not in plan, plan


@pytest.mark.parametrize("modalities", [["MR"], ["SR", "CT"], ["CT"]])
def test_dicom_study_search_by_modality_probes_each_study_in_list_order(modalities):
    """ModalitiesInStudy looks for a DICOM instance of the modality in each study. As an ``EXISTS``
    PostgreSQL hashed every instance of the modality before reading the first study (MR: 20,000
    instances, 10.5 ms of SQL; 200,000 and 87 ms at ten times the history). As a scalar subquery it
    reads the DICOM studies newest first, probing ``image_dicom_modality_study`` (modality, study)
    for each until the page is full (2 ms at either size); a study whose instances carry no
    modality is matched by the modality it was filed as (every backend, the same answers)."""
    mr = StudyFactory(modality="MR", study_instance_uid="1.2.3.10", study_date=datetime.date(2024, 3, 1))
    dx = StudyFactory(modality="DX", study_instance_uid="1.2.3.11", study_date=datetime.date(2024, 3, 2))
    legacy = StudyFactory(modality="MR", study_instance_uid="1.2.3.12", study_date=datetime.date(2024, 2, 1))
    legacy_ct = StudyFactory(modality="CT", study_instance_uid="1.2.3.13", study_date=datetime.date(2024, 1, 1))
    empty = StudyFactory(modality="MR", study_instance_uid="1.2.3.14", study_date=datetime.date(2024, 1, 2))
    instances = ((mr, "MR"), (mr, "SR"), (dx, "DX"), (legacy, ""), (legacy_ct, ""), (empty, ""))
    for n, (study, modality) in enumerate(instances):
        image = make_image(study, color=n + 1)
        Image.objects.filter(pk=image.pk).update(sop_instance_uid=f"{study.study_instance_uid}.{n}", modality=modality)
    Image.objects.filter(study=empty).delete()  # a DICOM study with no instance left: its filed modality
    expected = {("MR",): [mr, legacy, empty], ("SR", "CT"): [mr, legacy_ct], ("CT",): [legacy_ct]}[tuple(modalities)]
    assert [study.id for study in dicom_study_search(modalities=modalities)] == [study.id for study in expected]
    if connection.vendor != "postgresql":
        return
    # With five studies a sort is cheapest: priced out, the plan shows the list's order from an index.
    plan = _plan(
        dicom_study_search(modalities=modalities)[:101],
        priced_out=("seqscan", "bitmapscan", "sort", "incremental_sort"),
    )
    assert "hashed SubPlan" not in plan and "Hash" not in plan and "Sort" not in plan, plan
    # Every read of the instances is a probe for the study at hand (through the (modality, study)
    # index at scale; with a handful of rows, the study's own instances serve as well), but for
    # the one-off check, before the studies, that some instance has the modality at all.
    lines = plan.splitlines()
    reads = [n for n, line in enumerate(lines) if " on imaging_image " in line and "InitPlan" not in lines[n - 1]]
    assert reads and all("study_id = imaging_study.id" in lines[n + 1] for n in reads), plan
    assert sum("InitPlan" in line for line in lines) == 1, plan


@pytest.mark.services
@on_postgresql
def test_reviewed_results_are_read_from_their_own_index_in_list_order(client_for_role):
    """Reviews land on older results than the newest, so "reviewed" as an EXISTS walked the newer
    history result by result to fill a page (400 ms at 300,000 results); the flag on the row has a
    partial index in the list's order."""
    reviewer = UserFactory(role="radiologist")
    study = StudyFactory()
    results = [make_prediction(make_image(study, color=color)) for color in (1, 2, 3)]
    review_create(prediction=results[0], reviewer=reviewer, decision="agree")
    client = client_for_role("staff")
    listed = client.get("/api/v1/predictions/", {"reviewed": "true"}).json()["results"]
    assert [row["id"] for row in listed] == [str(results[0].id)]
    assert len(client.get("/api/v1/predictions/", {"reviewed": "false"}).json()["results"]) == 2

    queryset = PredictionFilter({"reviewed": "true"}, queryset=PredictionListApi().get_queryset()).qs
    plan = _plan(queryset.order_by("-queued_at", "-id")[:25], priced_out=("seqscan", "bitmapscan", "sort"))
    assert "prediction_reviewed_queued" in plan, plan
