"""Every page that shows or changes patient data leaves an audit record."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image as PILImage

from audit.models import AuditEvent
from imaging.storage import blob_store, content_name, sha256_hex
from inference.models import Prediction
from inference.study_status import study_refresh_status
from tests.factories import PatientFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = pytest.mark.django_db


def events(**filters):
    rows = AuditEvent.objects.filter(interface="ui", **filters).order_by("occurred_at", "pk")
    return list(rows.values_list("action", "object_type", "detail"))


def test_patient_pages_are_audited(staff_client, staff_user):
    patient = PatientFactory()
    staff_client.get(reverse("pages:patient-list"))
    staff_client.get(reverse("pages:patient-detail", args=[patient.id]))
    assert events(patient_id=patient.id) == [("read", "patients.patient", "list"), ("read", "patients.patient", "")]
    assert AuditEvent.objects.filter(actor=staff_user).count() == 2

    staff_client.post(reverse("pages:patient-create"), {"mrn": "NEW-1", "family_name": "New", "sex": "U"})
    assert ("create", "patients.patient", "") in events()


def test_study_page_upload_and_review_are_audited(staff_client, radiologist_client, study, sample_image_bytes):
    staff_client.get(reverse("pages:study-detail", args=[study.id]))
    staff_client.post(
        reverse("pages:study-upload", args=[study.id]),
        {"files": SimpleUploadedFile("a.png", sample_image_bytes("cxr-normal-1.png"))},
        HTTP_ACCEPT="application/json",
    )
    assert events(patient_id=study.patient_id) == [("read", "imaging.study", ""), ("create", "imaging.image", "")]

    prediction = make_prediction(make_image(study, name="b"), make_aimodel())
    study_refresh_status(study_id=study.id)
    radiologist_client.get(reverse("pages:worklist"))
    radiologist_client.get(reverse("pages:review", args=[study.id]))
    radiologist_client.post(
        reverse("pages:review", args=[study.id]), {"prediction": prediction.id, "decision": "agree"}
    )
    assert events(patient_id=study.patient_id)[2:] == [
        ("read", "imaging.study", "worklist"),
        ("read", "imaging.study", ""),
        ("create", "inference.review", ""),
    ]


def test_images_heatmaps_and_the_results_fragment_are_audited(staff_client, study):
    image = make_image(study, name="seen")
    prediction = make_prediction(image, make_aimodel())
    Prediction.objects.filter(id=prediction.id).update(heatmap=_heatmap_name())
    reads = [
        (reverse("pages:image-thumbnail", args=[image.id]), ("download", "imaging.image", "thumbnail")),
        (reverse("pages:image-display", args=[image.id]), ("download", "imaging.image", "")),
        (reverse("pages:image-render", args=[image.id]) + "?size=4096", ("download", "imaging.image", "render 4096")),
        (reverse("pages:prediction-heatmap", args=[prediction.id]), ("download", "inference.prediction", "heatmap")),
        (reverse("pages:study-results", args=[study.id]), ("read", "imaging.study", "results")),
    ]
    for url, expected in reads:
        before = AuditEvent.objects.count()
        assert staff_client.get(url).status_code == 200, url
        assert AuditEvent.objects.count() == before + 1, url
        assert events(patient_id=study.patient_id)[-1] == expected, url


def _heatmap_name() -> str:
    buffer = io.BytesIO()
    PILImage.linear_gradient("L").resize((4, 4)).save(buffer, format="PNG")
    data = buffer.getvalue()
    return blob_store(data=data, name=content_name("heatmaps", sha256_hex(data), ".png")).name
