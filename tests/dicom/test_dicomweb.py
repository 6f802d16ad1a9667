import pydicom
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pydicom import Dataset
from pydicom.uid import generate_uid

from audit.models import AuditAction, AuditEvent, AuditInterface
from imaging.dicomweb.multipart import build_multipart_related, parse_multipart_related
from imaging.models import Image, ImageSource
from tests.dicom.support import shipped_bytes, shipped_path
from tests.factories import StudyFactory
from tokens.services import api_token_create

SOP_INSTANCE = "00081155"
REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
FAILURE_REASON = "00081197"


def stow(client, parts, url="/dicomweb/studies"):
    body, content_type = build_multipart_related(
        [("application/dicom", data) for data in parts], root_type="application/dicom"
    )
    return client.post(url, data=body, content_type=content_type, HTTP_ACCEPT="application/dicom+json")


@pytest.fixture
def staff_client(api_client, staff_user):
    api_client.force_authenticate(staff_user)
    return api_client


@pytest.mark.django_db
def test_stow_stores_instances_and_answers_with_the_response_dataset(staff_client):
    response = stow(
        staff_client,
        [shipped_bytes("CT_small.dcm"), shipped_bytes("MR_small.dcm"), shipped_bytes("MR_truncated.dcm")],
    )
    assert response.status_code == 202  # some stored, one failed
    assert response["Content-Type"] == "application/dicom+json"
    answer = Dataset.from_json(response.content.decode())
    stored = {item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence}
    assert stored == {
        pydicom.dcmread(shipped_path("CT_small.dcm")).SOPInstanceUID,
        pydicom.dcmread(shipped_path("MR_small.dcm")).SOPInstanceUID,
    }
    assert all(
        item.RetrieveURL.startswith("http://testserver/dicomweb/studies/") for item in answer.ReferencedSOPSequence
    )
    assert len(answer.FailedSOPSequence) == 1
    assert answer.FailedSOPSequence[0].FailureReason == 0xC000
    assert set(Image.objects.values_list("source", flat=True)) == {ImageSource.STOW_RS}
    assert Image.objects.count() == 2


@pytest.mark.django_db
def test_stow_twice_stores_once(staff_client):
    assert stow(staff_client, [shipped_bytes("CT_small.dcm")]).status_code == 200
    response = stow(staff_client, [shipped_bytes("CT_small.dcm")])
    assert response.status_code == 200
    assert Image.objects.count() == 1


@pytest.mark.django_db
def test_stow_all_failed_is_409(staff_client):
    response = stow(staff_client, [shipped_bytes("CT_small.dcm")[:20_000]])
    assert response.status_code == 409
    assert not Image.objects.exists()


@pytest.mark.django_db
def test_stow_to_a_study_refuses_instances_of_another_study(staff_client):
    ct_study = pydicom.dcmread(shipped_path("CT_small.dcm")).StudyInstanceUID
    response = stow(
        staff_client,
        [shipped_bytes("CT_small.dcm"), shipped_bytes("MR_small.dcm")],
        url=f"/dicomweb/studies/{ct_study}",
    )
    assert response.status_code == 202
    answer = Dataset.from_json(response.content.decode())
    assert answer.FailedSOPSequence[0].FailureReason == 0xA900


@pytest.mark.django_db
def test_stow_needs_the_staff_role(api_client, radiologist_user):
    assert stow(api_client, [shipped_bytes("CT_small.dcm")]).status_code in (401, 403)
    api_client.force_authenticate(radiologist_user)
    assert stow(api_client, [shipped_bytes("CT_small.dcm")]).status_code == 403
    assert not Image.objects.exists()


@pytest.mark.django_db
def test_stow_refuses_a_body_that_is_not_multipart(staff_client):
    response = staff_client.post(
        "/dicomweb/studies", data=shipped_bytes("CT_small.dcm"), content_type="application/dicom"
    )
    assert response.status_code == 415


@pytest.mark.django_db
def test_qido_finds_studies_and_wado_returns_the_original(staff_client, staff_user, radiologist_user, api_client):
    ct = shipped_bytes("CT_small.dcm")
    stow(staff_client, [ct, shipped_bytes("MR_small.dcm")])
    tags = pydicom.dcmread(shipped_path("CT_small.dcm"))
    api_client.force_authenticate(radiologist_user)

    # Matching on the patient is a patient search, for staff only (accounts.policy).
    assert api_client.get("/dicomweb/studies", {"PatientID": tags.PatientID}).status_code == 403
    assert api_client.get("/dicomweb/studies", {"PatientName": "*"}).status_code == 403
    api_client.force_authenticate(staff_user)
    found = api_client.get("/dicomweb/studies", {"PatientID": tags.PatientID}, HTTP_ACCEPT="application/dicom+json")
    assert found.status_code == 200
    studies = [Dataset.from_json(item) for item in found.json()]
    assert [s.StudyInstanceUID for s in studies] == [tags.StudyInstanceUID]
    assert studies[0].NumberOfStudyRelatedInstances == 1
    assert studies[0].ModalitiesInStudy == "CT"
    assert api_client.get("/dicomweb/studies", {"PatientID": "nobody"}).status_code == 204
    api_client.force_authenticate(radiologist_user)

    instances = api_client.get(f"/dicomweb/studies/{tags.StudyInstanceUID}/instances").json()
    assert Dataset.from_json(instances[0]).SOPInstanceUID == tags.SOPInstanceUID

    series = api_client.get(f"/dicomweb/studies/{tags.StudyInstanceUID}/series").json()
    assert Dataset.from_json(series[0]).Modality == "CT"

    retrieved = api_client.get(
        f"/dicomweb/studies/{tags.StudyInstanceUID}/series/{tags.SeriesInstanceUID}/instances/{tags.SOPInstanceUID}",
        HTTP_ACCEPT='multipart/related; type="application/dicom"',
    )
    assert retrieved.status_code == 200
    root, parts = parse_multipart_related(b"".join(retrieved.streaming_content), retrieved["Content-Type"])
    assert root == "application/dicom"
    assert [part.data for part in parts] == [ct]

    metadata = api_client.get(f"/dicomweb/studies/{tags.StudyInstanceUID}/metadata").json()
    assert Dataset.from_json(metadata[0]).PatientID == tags.PatientID
    assert "BulkDataURI" in metadata[0]["7FE00010"]

    frames = api_client.get(
        f"/dicomweb/studies/{tags.StudyInstanceUID}/series/{tags.SeriesInstanceUID}"
        f"/instances/{tags.SOPInstanceUID}/frames/1"
    )
    _, frame_parts = parse_multipart_related(b"".join(frames.streaming_content), frames["Content-Type"])
    assert frame_parts[0].data == tags.pixel_array.astype("<i2").tobytes()


@pytest.mark.django_db
def test_dicomweb_needs_authentication(api_client):
    assert api_client.get("/dicomweb/studies").status_code in (401, 403)


@pytest.mark.django_db
def test_every_dicomweb_service_writes_its_audit_rows(staff_client, radiologist_user, api_client):
    ct = shipped_bytes("CT_small.dcm")
    stow(staff_client, [ct])
    tags = pydicom.dcmread(shipped_path("CT_small.dcm"))
    image = Image.objects.get(sop_instance_uid=tags.SOPInstanceUID)
    stored = AuditEvent.objects.get(interface=AuditInterface.DICOMWEB, action=AuditAction.CREATE)
    assert (stored.object_id, stored.patient_id) == (str(image.id), image.study.patient_id)

    api_client.force_authenticate(radiologist_user)
    study = f"/dicomweb/studies/{tags.StudyInstanceUID}"
    instance = f"{study}/series/{tags.SeriesInstanceUID}/instances/{tags.SOPInstanceUID}"
    calls = [
        (
            f"/dicomweb/studies?StudyInstanceUID={tags.StudyInstanceUID}",
            "QIDO-RS studies",
            AuditAction.READ,
            "imaging.study",
        ),
        (f"{study}/series", "QIDO-RS series", AuditAction.READ, "imaging.study"),
        (f"{study}/instances", "QIDO-RS instances", AuditAction.READ, "imaging.image"),
        (study, "WADO-RS instances", AuditAction.DOWNLOAD, "imaging.image"),
        (f"{study}/metadata", "WADO-RS metadata", AuditAction.READ, "imaging.image"),
        (f"{instance}/frames/1", "WADO-RS frames", AuditAction.DOWNLOAD, "imaging.image"),
    ]
    for url, detail, action, object_type in calls:
        before = AuditEvent.objects.count()
        assert api_client.get(url).status_code == 200, url
        [event] = AuditEvent.objects.order_by("-id")[: AuditEvent.objects.count() - before]
        assert (event.detail, event.action, event.object_type) == (detail, action, object_type), url
        assert event.interface == AuditInterface.DICOMWEB and event.actor == radiologist_user
        assert event.patient_id == image.study.patient_id and event.path == url.split("?")[0]


VIEWER = "https://viewer.example.org"


@pytest.mark.django_db
def test_cors_preflight_and_headers_for_configured_origins_only(client, settings):
    settings.CORS_ALLOWED_ORIGINS = [VIEWER]
    preflight = client.options(
        "/dicomweb/studies",
        HTTP_ORIGIN=VIEWER,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, accept",
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == VIEWER
    assert "authorization" in preflight["Access-Control-Allow-Headers"]
    assert "GET" in preflight["Access-Control-Allow-Methods"]

    # The answer itself carries the origin and lets the viewer read QIDO's Warning.
    answer = client.get("/dicomweb/studies", HTTP_ORIGIN=VIEWER)
    assert answer.status_code == 401
    assert answer["Access-Control-Allow-Origin"] == VIEWER
    assert "Warning" in answer["Access-Control-Expose-Headers"]

    # Another origin, or another part of MedPortal, gets no CORS headers.
    other = client.options(
        "/dicomweb/studies", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )
    assert "Access-Control-Allow-Origin" not in other
    api = client.options("/api/v1/studies/", HTTP_ORIGIN=VIEWER, HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert "Access-Control-Allow-Origin" not in api


@pytest.mark.django_db
def test_cors_is_off_by_default(client):
    preflight = client.options("/dicomweb/studies", HTTP_ORIGIN=VIEWER, HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert "Access-Control-Allow-Origin" not in preflight


@pytest.mark.django_db
def test_dicomweb_has_its_own_rate_per_token(api_client, staff_user, settings):
    settings.MEDPORTAL_API_TOKEN_RATE = "2/min"
    settings.MEDPORTAL_DICOMWEB_TOKEN_RATE = "5/min"
    _, key = api_token_create(name="viewer", user=staff_user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    # Far more DICOMweb requests than the API rate allows...
    assert [api_client.get("/dicomweb/studies").status_code for _ in range(5)] == [204] * 5
    # ...until DICOMweb's own rate is used up.
    limited = api_client.get("/dicomweb/studies")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    # The API's budget was not touched by them.
    assert api_client.get("/api/v1/studies/").status_code == 200


@pytest.mark.django_db
def test_qido_study_search_costs_the_same_statements_at_any_limit_and_audits_each_study(staff_client, staff_user):
    studies = [StudyFactory(study_instance_uid=generate_uid()) for _ in range(12)]

    def search(limit: int):
        with CaptureQueriesContext(connection) as queries:
            response = staff_client.get("/dicomweb/studies", {"limit": limit}, HTTP_ACCEPT="application/dicom+json")
        assert response.status_code == 200
        return response.json(), queries.captured_queries

    search(1)  # the token's user and roles are read once
    small, small_queries = search(2)
    before = AuditEvent.objects.count()
    large, large_queries = search(12)
    assert (len(small), len(large)) == (2, 12)
    assert len(small_queries) == len(large_queries)
    inserts = [q for q in large_queries if q["sql"].startswith('INSERT INTO "audit_auditevent"')]
    assert len(inserts) == 1
    events = AuditEvent.objects.order_by("id")[before:]
    by_uid = {study.study_instance_uid: study for study in studies}
    answered = [by_uid[item["0020000D"]["Value"][0]] for item in large]
    assert [(e.object_type, e.object_id, e.patient_id) for e in events] == [
        ("imaging.study", str(study.pk), study.patient_id) for study in answered
    ]
    assert {(e.actor, e.detail, e.interface) for e in events} == {(staff_user, "QIDO-RS studies", "dicomweb")}
