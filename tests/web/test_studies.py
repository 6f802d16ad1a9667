import io
import json

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image as PILImage

from imaging.models import Image, Study
from inference.models import Prediction, PredictionStatus
from tests.factories import PatientFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = pytest.mark.django_db


def test_create_study_for_a_patient(staff_client, staff_user):
    patient = PatientFactory()
    url = reverse("pages:study-create", args=[patient.id])
    assert staff_client.get(url).status_code == 200
    response = staff_client.post(
        url,
        {
            "modality": "DX",
            "body_part": "CHEST",
            "procedure": "",
            "accession_number": "ACC-123",
            "priority": "1",
            "study_date": "2026-11-20",
            "description": "Cough, fever",
            "referring_physician": "",
        },
    )
    study = Study.objects.get(accession_number="ACC-123")
    assert response.status_code == 302 and response.url == reverse("pages:study-detail", args=[study.id])
    assert (study.patient, study.priority, study.created_by) == (patient, 1, staff_user)
    assert str(study.study_date) == "2026-11-20"


def test_create_study_shows_errors_next_to_fields(staff_client, study):
    response = staff_client.post(
        reverse("pages:study-create", args=[study.patient.id]),
        {"modality": "XX", "body_part": "CHEST", "accession_number": study.accession_number, "priority": "3"},
    )
    assert response.status_code == 200
    assert set(response.context["form"].errors) >= {"modality", "accession_number"}
    assert response.context["form"].errors["accession_number"] == ["Another study already has this accession number."]
    assert Study.objects.count() == 1


def test_study_page_shows_every_ai_result_with_its_context(staff_client, study):
    model = make_aimodel()
    done = make_image(study, name="left.png")
    queued = make_image(study, name="right.png")
    broken = make_image(study, name="broken.png")
    make_prediction(done, model, label="pneumonia", confidence=0.873)
    make_prediction(queued, model, status=PredictionStatus.QUEUED)
    make_prediction(broken, model, status=PredictionStatus.FAILED, error="Input has the wrong shape.")

    response = staff_client.get(reverse("pages:study-detail", args=[study.id]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "AI second opinion — not a diagnosis" in html
    assert "pneumonia" in html and "87.3%" in html and "12.7%" in html  # label, confidence, every class
    assert 'style="width: 87.3%"' in html  # the confidence bar
    assert "cxr-pneumonia v1.2.0" in html  # exact model version
    assert "Queued" in html and "Waiting for the AI worker" in html
    assert "Failed" in html and "Input has the wrong shape." in html
    assert "flagged abnormal" in html
    assert response.context["pending"] is True
    for image in (done, queued, broken):
        assert reverse("pages:image-thumbnail", args=[image.id]) in html


def test_results_fragment_reports_when_nothing_is_pending(staff_client, study):
    model = make_aimodel()
    prediction = make_prediction(make_image(study), model, status=PredictionStatus.RUNNING)
    fragment = staff_client.get(reverse("pages:study-results", args=[study.id]))
    assert fragment.status_code == 200
    assert 'data-pending="true"' in fragment.content.decode()
    assert "<html" not in fragment.content.decode()

    Prediction.objects.filter(id=prediction.id).update(
        status=PredictionStatus.SUCCEEDED,
        label="normal",
        confidence=0.6,
        probabilities={"normal": 0.6, "pneumonia": 0.4},
    )
    fragment = staff_client.get(reverse("pages:study-results", args=[study.id])).content.decode()
    assert 'data-pending="false"' in fragment and "60.0%" in fragment


def _png(size=(32, 32), value=128) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("L", size, color=value).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(name: str, data: bytes):
    return SimpleUploadedFile(name, data, content_type="image/png")


def test_form_upload_keeps_good_files_and_reports_each_rejected_one(staff_client, study):
    response = staff_client.post(
        reverse("pages:study-upload", args=[study.id]),
        {
            "files": [
                _upload("notes.txt", b"not an image at all"),
                _upload("good.png", _png()),
                _upload("corrupt.png", _png()[:40]),
            ]
        },
        follow=True,
    )
    html = response.content.decode()
    assert list(study.images.values_list("original_filename", flat=True)) == ["good.png"]
    assert "good.png: uploaded" in html
    assert "notes.txt: rejected. The file is not a PNG or JPEG image" in html
    assert "corrupt.png: rejected." in html


def test_script_upload_answers_json_per_file(staff_client, study, sample_image_bytes):
    url = reverse("pages:study-upload", args=[study.id])
    good = staff_client.post(
        url, {"files": _upload("cxr.png", sample_image_bytes("cxr-normal-1.png"))}, HTTP_ACCEPT="application/json"
    )
    assert good.status_code == 200
    (result,) = good.json()["results"]
    assert result["ok"] is True and result["duplicate"] is False
    assert Image.objects.get(id=result["image_id"]).study == study

    again = staff_client.post(
        url, {"files": _upload("copy.png", sample_image_bytes("cxr-normal-1.png"))}, HTTP_ACCEPT="application/json"
    )
    assert again.json()["results"][0]["duplicate"] is True

    bad = staff_client.post(url, {"files": _upload("empty.png", b"")}, HTTP_ACCEPT="application/json")
    assert bad.status_code == 400
    assert bad.json()["results"][0] == {"filename": "empty.png", "ok": False, "error": "The file is empty."}
    assert study.images.count() == 1


def test_upload_queues_an_ai_second_opinion(staff_client, study, tiny_model, sample_image_bytes):
    staff_client.post(
        reverse("pages:study-upload", args=[study.id]),
        {"files": _upload("cxr.png", sample_image_bytes("cxr-pneumonia-1.png"))},
        HTTP_ACCEPT="application/json",
    )
    prediction = Prediction.objects.get(image__study=study)
    assert (prediction.model, prediction.status) == (tiny_model, PredictionStatus.QUEUED)
    study.refresh_from_db()
    assert study.status == "ai_pending"


def test_only_staff_upload(radiologist_client, study):
    response = radiologist_client.post(
        reverse("pages:study-upload", args=[study.id]),
        {"files": _upload("a.png", _png())},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 403
    assert study.images.count() == 0
    # ...but radiologists see the study page, without the upload form.
    page = radiologist_client.get(reverse("pages:study-detail", args=[study.id])).content.decode()
    assert "data-upload-form" not in page


def test_thumbnail_and_display_images_are_png(staff_client, study):
    image = make_image(study, name="x.png")
    for name in ("pages:image-thumbnail", "pages:image-display"):
        response = staff_client.get(reverse(name, args=[image.id]))
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert "private" in response["Cache-Control"]
        assert PILImage.open(io.BytesIO(response.content)).size == (16, 12)


def test_upload_json_when_no_file(staff_client, study):
    response = staff_client.post(reverse("pages:study-upload", args=[study.id]), {}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert json.loads(response.content)["results"][0]["error"] == "No file was sent."


def test_a_near_certain_result_is_never_shown_as_100_percent(staff_client, study):
    make_prediction(make_image(study), make_aimodel(), label="pneumonia", confidence=0.99963)
    html = staff_client.get(reverse("pages:study-detail", args=[study.id])).content.decode()
    assert "Confidence &gt;99.9%" in html and ">100.0%<" not in html
    assert "&lt;0.1%" in html  # the other class


def test_upload_warns_when_the_ai_queue_is_busy(staff_client, study, settings):
    settings.MEDPORTAL_QUEUE_SOFT_LIMIT = 1
    model = make_aimodel()
    for name in ("q1", "q2"):
        make_prediction(make_image(study, name=name), model, status=PredictionStatus.QUEUED)
    url = reverse("pages:study-upload", args=[study.id])
    cache.clear()  # the queue status is cached for a moment; earlier tests must not answer for this one
    answer = staff_client.post(url, {"files": _upload("a.png", _png())}, HTTP_ACCEPT="application/json").json()
    # Two already waiting, and the upload queued its own second opinion.
    assert answer["queue"]["over_limit"] is True and answer["queue"]["depth"] == 3
    cache.clear()
    page = staff_client.post(url, {"files": _upload("b.png", _png(value=9))}, follow=True).content.decode()
    assert "The AI queue is busy (4 images waiting)" in page


def test_an_image_a_model_declined_reads_not_run_rather_than_failed(staff_client, study):
    model = make_aimodel()
    reason = "Not run: this image does not look like the chest X-ray images this model was trained on."
    make_prediction(make_image(study, name="photo.png"), model, status=PredictionStatus.FAILED, error=reason)

    html = staff_client.get(reverse("pages:study-detail", args=[study.id])).content.decode()
    assert '<span class="badge badge--not-run">Not run</span>' in html
    assert "No AI second opinion for this image. " + reason in html
    assert "could not read this image" not in html and "badge--failed" not in html
