"""Every URL of the product that answers with patient data writes its audit row.

Walks the URLconf itself, so a new page, API endpoint or DICOMweb service is checked the day it
is added. The Django admin is walked view by view in tests/test_admin.py.
"""

import io

import pydicom
import pytest
from django.urls import URLResolver, get_resolver
from PIL import Image as PILImage

from audit.models import AuditEvent
from imaging.intake import IncomingFile, files_intake
from imaging.models import ImageSource
from imaging.storage import blob_store, content_name, sha256_hex
from inference.models import Review, ReviewDecision
from inference.study_status import study_refresh_status
from tests.dicom.support import shipped_bytes
from tests.factories import StudyFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = pytest.mark.django_db

# Patterns that answer a GET without patient data, and why.
EXEMPT = {
    "login/": "the sign-in form",
    "logout/": "signs out",
    "api/v1/schema/": "the API description",
    "api/v1/docs/": "the API description",
    "api/v1/redoc/": "the API description",
    "api/v1/^[\\s\\S]*$": "the API's not-found answer",
    "api/v1/models/": "AI model versions, no patient data",
    "api/v1/models/<uuid:model_id>/": "an AI model version, no patient data",
    "api/v1/audit-events/": "the trail itself (ids, no names), administrators only",
    "api/v1/audit-events/<int:event_id>/": "the trail itself (ids, no names), administrators only",
    "patients/new/": "an empty form",
    "dicom/import/": "an empty form",
}


def _patterns(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


def _url(pattern: str, values: dict) -> str:
    url = pattern
    for key, value in values.items():
        for converter in ("uuid", "str", "int"):
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
    }


def test_every_url_with_patient_data_writes_its_audit_row(client, admin_user, values):
    client.force_login(admin_user)
    unaudited = []
    for pattern in _patterns(get_resolver().url_patterns):
        if pattern.startswith("admin/") or pattern in EXEMPT:
            continue
        url = _url(pattern, values)
        last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        response = client.get(url)
        assert response.status_code != 500, url
        if response.status_code != 200:
            continue  # a POST-only door (405) or a redirect: nothing was shown
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
        rows = AuditEvent.objects.filter(id__gt=last, actor=admin_user, path=url.split("?")[0])
        if not rows.exists():
            unaudited.append(url)
    assert unaudited == []
