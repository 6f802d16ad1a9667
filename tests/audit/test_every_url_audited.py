"""Every URL of the product declares its audit, and those that answer with patient data write their rows.

Walks the URLconf itself, so a new page, API endpoint or DICOMweb service is checked the day it
is added: its view must carry ``@audited`` or ``@audit_exempt`` with a reason (audit.access). The
Django admin's own views are checked here too; its pages of each model are walked view by view in
tests/test_admin.py.
"""

import io

import pydicom
import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver
from PIL import Image as PILImage

from audit.access import declaration_of
from audit.models import AuditEvent
from imaging.intake import IncomingFile, files_intake
from imaging.models import ImageSource
from imaging.storage import blob_store, content_name, sha256_hex
from inference.models import Review, ReviewDecision
from inference.study_status import study_refresh_status
from patients.models import Patient
from tests.dicom.support import shipped_bytes
from tests.factories import PatientFactory, StudyFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = pytest.mark.django_db

# Audited views whose GET is an empty form: they record what they create, on POST.
EMPTY_FORMS = {"patients/new/", "dicom/import/"}

# The admin site's own views, by URL name, and why they write no audit row. Its pages of each model
# are AuditedAdminMixin's (tests/test_admin.py); its autocomplete answers with patient names.
ADMIN_SITE_EXEMPT = {
    "index": "model names, no records",
    "app_list": "an app's model names, no records",
    "login": "the sign-in form (logins are recorded by audit.logins)",
    "logout": "signs out (recorded by audit.logins)",
    "password_change": "the user's own password",
    "password_change_done": "the user's own password",
    "jsi18n": "translations",
    "view_on_site": "a redirect to the record's page, which is audited",
    None: "the admin's not-found answer",
}
ADMIN_SITE_AUDITED = {"autocomplete"}


def _patterns(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def _product_patterns():
    return [(route, p) for route, p in _patterns(get_resolver().url_patterns) if not route.startswith("admin/")]


def _url(pattern: str, values: dict) -> str:
    url = pattern
    for key, value in values.items():
        for converter in ("uuid", "str", "int", "path"):
            url = url.replace(f"<{converter}:{key}>", str(value))
    assert "<" not in url, f"no fixture value for {pattern}"
    return "/" + url


@pytest.fixture
def values(admin_user):
    [intake] = files_intake(
        files=[IncomingFile.from_bytes(shipped_bytes("CT_small.dcm"))],
        source=ImageSource.STOW_RS,
        uploaded_by=admin_user,
    )
    image = intake.image
    dataset = pydicom.dcmread(io.BytesIO(shipped_bytes("CT_small.dcm")))
    prediction = make_prediction(image, make_aimodel(modalities=["CT"]))
    buffer = io.BytesIO()
    PILImage.new("L", (image.width, image.height)).save(buffer, format="PNG")
    data = buffer.getvalue()
    prediction.heatmap = blob_store(data=data, name=content_name("heatmaps", sha256_hex(data), ".png")).name
    prediction.save()
    # A second study awaiting its review, so that the worklists show a row.
    waiting = StudyFactory()
    make_prediction(make_image(waiting, name="waiting.png"), prediction.model)
    study_refresh_status(study_id=waiting.id)
    review = Review.objects.create(
        prediction=prediction, decision=ReviewDecision.AGREE, final_label=prediction.label, reviewer=admin_user
    )
    return {
        "patient_id": image.study.patient_id,
        "study_id": image.study_id,
        "image_id": image.id,
        "prediction_id": prediction.id,
        "model_id": prediction.model_id,
        "review_id": review.id,
        "event_id": AuditEvent.objects.latest("id").id if AuditEvent.objects.exists() else 1,
        "study_uid": dataset.StudyInstanceUID,
        "series_uid": dataset.SeriesInstanceUID,
        "instance_uid": dataset.SOPInstanceUID,
        "frames": "1",
        "path": "7FE00010",
        # The OHIF Viewer's page with the study opened in it (imaging.viewer).
        "route": f"viewer?StudyInstanceUIDs={dataset.StudyInstanceUID}",
    }


def test_every_url_declares_its_audit():
    undeclared = [route for route, pattern in _product_patterns() if declaration_of(pattern.callback) is None]
    assert undeclared == [], "add @audited(interface) or @audit_exempt(reason) to their views (audit.access)"


def _get(client, url: str):
    response = client.get(url)
    assert response.status_code != 500, url
    if hasattr(response, "streaming_content"):
        return response, b"".join(response.streaming_content)
    return response, response.content


def test_every_audited_url_writes_its_audit_row(client, admin_user, values):
    client.force_login(admin_user)
    unaudited = []
    for route, pattern in _product_patterns():
        if declaration_of(pattern.callback).exempt or route in EMPTY_FORMS:
            continue
        url = _url(route, values)
        last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        response, _ = _get(client, url)
        if response.status_code != 200:
            continue  # a POST-only door (405) or a redirect: nothing was shown
        rows = AuditEvent.objects.filter(id__gt=last, actor=admin_user, path=url.split("?")[0])
        if not rows.exists():
            unaudited.append(url)
    assert unaudited == []


def test_urls_exempt_from_the_audit_show_no_patient_data(client, admin_user, values):
    client.force_login(admin_user)
    # Names no page shows by chance (a factory's "Lane" would match text of the API docs).
    for number, patient in enumerate(Patient.objects.all()):
        Patient.objects.filter(id=patient.id).update(family_name=f"Qzxfamily{number}", given_name=f"Qzxgiven{number}")
    patients = Patient.objects.all()
    secrets = [value.encode() for p in patients for value in (p.mrn, p.family_name, p.given_name)]
    assert len(secrets) >= 6
    exempt = [route for route, p in _product_patterns() if declaration_of(p.callback).exempt or route in EMPTY_FORMS]
    assert {"login/", "api/v1/models/", "patients/new/"} <= set(exempt)
    for route in exempt:
        url = _url(route, values)
        _, body = _get(client, url)
        assert not [secret for secret in secrets if secret in body], url


def _admin_site_views():
    return {pattern.name: pattern for pattern in admin.site.get_urls() if isinstance(pattern, URLPattern)}


def test_every_view_of_the_admin_site_is_audited_or_exempt():
    assert set(_admin_site_views()) == set(ADMIN_SITE_EXEMPT) | ADMIN_SITE_AUDITED


def test_the_admin_autocomplete_records_each_patient_it_returns(client, admin_user):
    client.force_login(admin_user)
    found = [PatientFactory(family_name="Autocompleted"), PatientFactory(family_name="Autocompleted")]
    PatientFactory(family_name="Other")
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "imaging", "model_name": "study", "field_name": "patient", "term": "Autocompleted"},
    )
    assert response.status_code == 200
    returned = {row["id"] for row in response.json()["results"]}
    assert returned == {str(patient.id) for patient in found}
    events = AuditEvent.objects.filter(id__gt=before)
    assert sorted((e.action, e.interface, e.detail, e.object_id) for e in events) == sorted(
        ("read", "admin", "autocomplete", str(patient.id)) for patient in found
    )
    assert {event.patient_id for event in events} == {patient.id for patient in found}
    assert all(event.actor == admin_user and "Autocompleted" not in event.detail for event in events)
