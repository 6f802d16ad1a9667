"""Every URL the API hands out works for a machine client, and none of them is a page.

A client with an API token (no session) walks every GET operation of the OpenAPI schema, then
follows every URL found anywhere in every JSON answer, recursively, and expects a real answer:
2xx, never a redirect to the login form. The records are made through the API itself, with real
files in storage, so that downloads have something to send.
"""

import io
import json

import pydicom
import pytest
from django.core.files.base import ContentFile
from django.urls import get_resolver
from drf_spectacular.generators import SchemaGenerator
from PIL import Image as PILImage
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent, AuditInterface
from imaging.models import Image
from inference.models import Prediction, PredictionStatus
from tests.api.helpers import make_aimodel, make_prediction
from tests.support.images import png_bytes
from tokens.services import api_token_create

pytestmark = pytest.mark.django_db

ORIGIN = "http://testserver"
API_ROOT = f"{ORIGIN}/api/v1/"
WALK_ROLES = ("staff", "radiologist", "admin")
ADMIN_ONLY_PREFIXES = ("/api/v1/audit-events/",)
STAFF_ONLY = ("/api/v1/patients/",)  # a patient search (accounts.policy)


def token_client(user) -> APIClient:
    _, key = api_token_create(name=f"links {user.username}", user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def records(settings, user_for_role):
    """A patient, a study with two uploaded images, a succeeded result with a heatmap, a failed and a
    queued one, a review and audit events: every kind of row the API lists."""
    settings.MEDPORTAL_API_TOKEN_RATE = None
    staff = token_client(user_for_role("staff"))
    patient = staff.post("/api/v1/patients/", {"mrn": "LINK-1", "family_name": "Walker"}, format="json")
    assert patient.status_code == 201, patient.content
    study = staff.post(
        "/api/v1/studies/",
        {"patient": patient.json()["id"], "accession_number": "LINK-A1", "modality": "DX", "body_part": "CHEST"},
        format="json",
    )
    assert study.status_code == 201, study.content
    files = [
        ContentFile(png_bytes(width=20, height=10, color=60), name="one.png"),
        ContentFile(png_bytes(width=12, height=24, color=200), name="two.png"),
    ]
    upload = staff.post(f"/api/v1/studies/{study.json()['id']}/images/", {"file": files}, format="multipart")
    assert upload.status_code == 201, upload.content
    images = [row["id"] for row in upload.json()["images"]]
    model = make_aimodel()
    done = make_prediction(image=_image(images[0]), model=model)
    done.heatmap.save("heatmap.png", ContentFile(png_bytes(width=20, height=10)), save=True)
    make_prediction(image=_image(images[1]), model=model, status=PredictionStatus.FAILED)
    make_prediction(image=_image(images[1]), model=make_aimodel(name="other"), status=PredictionStatus.QUEUED)
    review = token_client(user_for_role("radiologist")).post(
        "/api/v1/reviews/", {"prediction": str(done.id), "decision": "agree"}, format="json"
    )
    assert review.status_code == 201, review.content
    return {
        "patient_id": patient.json()["id"],
        "study_id": study.json()["id"],
        "image_id": images[0],
        "prediction_id": str(done.id),
        "model_id": str(model.id),
        "review_id": review.json()["id"],
        "event_id": str(AuditEvent.objects.order_by("id").values_list("id", flat=True).first()),
    }


def _image(image_id) -> Image:
    return Image.objects.get(id=image_id)


def get_operations() -> list[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(path for path, operations in schema["paths"].items() if "get" in operations)


def urls_in(value, key: str = "") -> list[str]:
    """Every link anywhere in a JSON document: absolute URLs, and whatever a ``*_url`` field or a
    ``next``/``previous`` page holds. (Plain paths elsewhere are data, e.g. the path an audit event
    records, not links.)"""
    if isinstance(value, dict):
        return [url for name, item in value.items() for url in urls_in(item, name)]
    if isinstance(value, list):
        return [url for item in value for url in urls_in(item, key)]
    if isinstance(value, str) and (
        value.startswith(("http://", "https://")) or key.endswith("url") or key in ("next", "previous")
    ):
        return [value]
    return []


def answer(client: APIClient, url: str):
    response = client.get(url)
    assert not 300 <= response.status_code < 400, f"{url} redirects to {response.get('Location')}"
    assert 200 <= response.status_code < 300, f"{url} answered {response.status_code}: {response.content[:200]}"
    return response


@pytest.mark.parametrize("role", WALK_ROLES)
def test_every_url_in_every_api_answer_works_for_a_token_client(records, user_for_role, role):
    client = token_client(user_for_role(role))
    start = [
        path.format(**records)
        for path in get_operations()
        if role == "admin" or not path.startswith(ADMIN_ONLY_PREFIXES)
        if role != "radiologist" or path not in STAFF_ONLY
    ]
    assert any("{" in path for path in get_operations()), "expected detail endpoints in the schema"
    seen: set[str] = set()
    followed: list[str] = []
    queue = [(path, None) for path in start]
    while queue:
        url, found_in = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        if found_in is not None:
            # A link must lead into the API, never to a page that wants a browser session.
            assert url.startswith(API_ROOT), f"{found_in} links to {url}, outside the API"
            followed.append(url)
        response = answer(client, url)
        if response["Content-Type"].startswith("application/json"):
            queue.extend((link, url) for link in urls_in(json.loads(response.content)))

    followed_paths = {url.removeprefix(ORIGIN).split("?")[0] for url in followed}
    for expected in (
        f"/api/v1/images/{records['image_id']}/file/",
        f"/api/v1/images/{records['image_id']}/render/",
        f"/api/v1/predictions/{records['prediction_id']}/heatmap/",
        f"/api/v1/predictions/{records['prediction_id']}/report/",
    ):
        assert expected in followed_paths, f"no answer linked to {expected}"


def test_the_report_and_the_rendering_are_downloads_of_the_api(records, user_for_role):
    radiologist = user_for_role("radiologist")
    client = token_client(radiologist)
    prediction_id, image_id = records["prediction_id"], records["image_id"]

    report = answer(client, f"/api/v1/predictions/{prediction_id}/report/")
    assert report["Content-Type"] == "application/dicom"
    assert pydicom.dcmread(io.BytesIO(report.content)).Modality == "SR"
    heatmap = answer(client, f"/api/v1/predictions/{prediction_id}/heatmap/")
    assert heatmap["Content-Type"] == "image/png"
    full = answer(client, f"/api/v1/images/{image_id}/render/")
    assert full["Content-Type"] == "image/png"
    assert PILImage.open(io.BytesIO(full.content)).size == (20, 10)
    thumbnail = answer(client, f"/api/v1/images/{image_id}/render/?size=8")
    assert PILImage.open(io.BytesIO(thumbnail.content)).size == (8, 4)

    downloads = AuditEvent.objects.filter(actor=radiologist, action=AuditAction.DOWNLOAD)
    # Recorded like the page downloads, as the API: the report, the heatmap and the full rendering;
    # a thumbnail is not a download.
    assert sorted(downloads.values_list("interface", "object_id", "detail")) == sorted(
        [
            (AuditInterface.API, prediction_id, "DICOM SR"),
            (AuditInterface.API, prediction_id, ""),
            (AuditInterface.API, image_id, ""),
        ]
    )


def test_the_api_downloads_check_roles_and_state(records, user_for_role):
    roleless = token_client(user_for_role("roleless"))
    prediction_id, image_id = records["prediction_id"], records["image_id"]
    for url in (f"/api/v1/predictions/{prediction_id}/report/", f"/api/v1/images/{image_id}/render/"):
        assert roleless.get(url).status_code == 403
        assert APIClient().get(url).status_code == 401

    staff = token_client(user_for_role("staff"))
    queued = Prediction.objects.get(status=PredictionStatus.QUEUED)
    refused = staff.get(f"/api/v1/predictions/{queued.id}/report/")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
    bad_size = staff.get(f"/api/v1/images/{image_id}/render/?size=0")
    assert bad_size.status_code == 400 and "size" in bad_size.json()["error"]["fields"]


def test_every_route_is_named_in_a_namespace():
    resolver = get_resolver()
    # A bare name could be reversed by mistake from the API (or a page) and hand out the other kind.
    assert [name for name in resolver.reverse_dict if isinstance(name, str)] == []
    assert {"api", "pages", "dicomweb"} <= set(resolver.namespace_dict)
    api_names = [name for name in resolver.namespace_dict["api"][1].reverse_dict if isinstance(name, str)]
    assert "study-detail" in api_names and "prediction-report" in api_names
    page_names = [name for name in resolver.namespace_dict["pages"][1].reverse_dict if isinstance(name, str)]
    assert "study-detail" in page_names and "prediction-report" in page_names
