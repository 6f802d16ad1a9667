"""DICOM in the clinical pages: import filed by tags, SR and export links, DICOM thumbnails and viewer."""

import io

import pydicom
import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.html import escape
from PIL import Image as PILImage
from pydicom.uid import generate_uid

from audit.models import AuditAction, AuditEvent, AuditInterface
from imaging.dicom.services import dicom_ingest
from imaging.models import Image, ImageSource, Study
from inference.models import PredictionStatus
from patients.models import Patient
from tests.dicom.support import chest_radiograph_dataset, dataset_bytes, retagged, shipped_bytes, shipped_path
from tests.factories import PatientFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = pytest.mark.django_db

IMPORT_URL = "/dicom/import/"


def dcm(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/dicom")


def import_json(client, *files: SimpleUploadedFile):
    """Posts as the page's script does: JSON back, one result per file."""
    return client.post(IMPORT_URL, {"files": list(files)}, headers={"accept": "application/json"})


def test_import_page_is_linked_for_staff(staff_client):
    assert reverse("pages:dicom-import") == IMPORT_URL
    response = staff_client.get(IMPORT_URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert "data-upload-form" in html and "data-dropzone" in html and "js/study.js" in html  # the study uploader
    assert 'accept=".dcm' in html
    listing = staff_client.get(reverse("pages:patient-list")).content.decode()
    assert listing.count(f'href="{IMPORT_URL}"') == 2  # staff navigation and the patient list


def test_two_files_are_filed_under_the_patient_and_study_of_their_tags(staff_client, staff_user):
    tags = pydicom.dcmread(shipped_path("CT_small.dcm"))
    # Matched by PatientID and name, not created again.
    known = PatientFactory(mrn=tags.PatientID, family_name="CompressedSamples", given_name="CT1")
    response = staff_client.post(
        IMPORT_URL, {"files": [dcm("one.dcm", retagged("CT_small.dcm")), dcm("two.dcm", retagged("CT_small.dcm"))]}
    )
    assert response.status_code == 302 and response.url == IMPORT_URL

    images = list(Image.objects.select_related("study__patient").order_by("original_filename"))
    assert [image.original_filename for image in images] == ["one.dcm", "two.dcm"]
    study = Study.objects.get()
    assert study.study_instance_uid == tags.StudyInstanceUID and study.patient == known
    assert {image.study_id for image in images} == {study.id}
    assert all(image.uploaded_by == staff_user and image.source == ImageSource.UPLOAD for image in images)
    assert Patient.objects.count() == 1
    texts = [str(message) for message in get_messages(response.wsgi_request)]
    assert len(texts) == 2 and all(f"filed in Study {study.accession_number}" in text for text in texts)

    created = AuditEvent.objects.filter(action=AuditAction.CREATE, interface=AuditInterface.UI)
    assert set(created.values_list("object_type", "object_id")) == {
        ("imaging.study", str(study.id)),
        *{("imaging.image", str(image.id)) for image in images},
    }
    assert set(created.values_list("patient_id", flat=True)) == {known.id}


def test_each_file_gets_a_result_line_with_where_it_was_filed(staff_client):
    dataset = chest_radiograph_dataset(patient_id="CXR-0100", patient_name="Hopper^Grace")
    response = import_json(staff_client, dcm("cxr.dcm", dataset_bytes(dataset)))
    assert response.status_code == 200
    [result] = response.json()["results"]
    image = Image.objects.select_related("study__patient").get()
    assert result["ok"] and not result["duplicate"] and result["analysable"]
    assert result["image_id"] == str(image.id)
    assert result["study_url"] == reverse("pages:study-detail", args=[image.study.id])
    assert image.study.accession_number in result["study_label"] and "CXR-0100" in result["study_label"]
    assert (image.study.patient.mrn, image.study.patient.family_name) == ("CXR-0100", "Hopper")


def test_truncated_file_is_rejected_with_its_reason_and_nothing_is_stored(staff_client):
    response = import_json(staff_client, dcm("cut.dcm", shipped_bytes("CT_small.dcm")[:30_000]))
    assert response.status_code == 400
    [result] = response.json()["results"]
    assert not result["ok"] and "truncated" in result["error"] and "nothing was stored" in result["error"]
    assert not Image.objects.exists() and not Study.objects.exists() and not Patient.objects.exists()


def test_a_rejected_file_does_not_stop_the_others(staff_client):
    response = import_json(
        staff_client,
        dcm("good.dcm", shipped_bytes("CT_small.dcm")),
        dcm("broken.dcm", shipped_bytes("MR_truncated.dcm")),
        dcm("photo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64),
    )
    assert response.status_code == 200
    good, broken, photo = response.json()["results"]
    assert good["ok"] and good["filename"] == "good.dcm"
    assert not broken["ok"] and "truncated" in broken["error"]
    # Judged like any file (by content, not name): a broken picture, whatever page it was sent to.
    assert not photo["ok"] and "not a PNG or JPEG image (or DICOM)" in photo["error"]
    assert Image.objects.count() == 1


def test_duplicate_says_already_stored(staff_client):
    data = shipped_bytes("MR_small.dcm")
    first = import_json(staff_client, dcm("mr.dcm", data)).json()["results"][0]
    again = import_json(staff_client, dcm("mr-again.dcm", data)).json()["results"][0]
    assert not first["duplicate"]
    assert again["ok"] and again["duplicate"] and again["state"] == "Already stored"
    assert again["image_id"] == first["image_id"] and again["study_url"] == first["study_url"]
    assert Image.objects.count() == 1

    response = staff_client.post(IMPORT_URL, {"files": [dcm("mr.dcm", data)]}, follow=True)
    assert "mr.dcm: already stored" in response.content.decode()


def test_undecodable_file_is_stored_and_says_why_it_is_not_analysed(staff_client):
    response = import_json(staff_client, dcm("lossy.dcm", shipped_bytes("JPEG-lossy.dcm")))
    [result] = response.json()["results"]
    image = Image.objects.get()
    assert result["ok"] and not result["analysable"] and result["state"] == "Stored, not analysable"
    assert result["note"] == f"Stored, not analysable: {image.not_analysable_reason}"
    assert "JPEG Extended" in result["note"]

    page = staff_client.get(result["study_url"]).content.decode()
    assert escape(f"Stored, not analysable: {image.not_analysable_reason}") in page
    assert "No AI model applies" not in page and "data-prediction-status" not in page


def test_import_is_for_staff_only(radiologist_client):
    for response in (
        radiologist_client.get(IMPORT_URL),
        radiologist_client.post(IMPORT_URL, {"files": [dcm("ct.dcm", shipped_bytes("CT_small.dcm"))]}),
    ):
        assert response.status_code == 403
        assert "You cannot open this page" in response.content.decode()
    assert not Image.objects.exists()
    nav = radiologist_client.get(reverse("pages:worklist")).content.decode()
    assert IMPORT_URL not in nav


def test_study_page_upload_accepts_dicom(staff_client, study):
    html = staff_client.get(reverse("pages:study-detail", args=[study.id])).content.decode()
    assert 'accept="image/png,image/jpeg,.dcm,application/dicom"' in html
    assert "PNG, JPEG or DICOM (.dcm)" in html


@pytest.fixture
def dicom_image(staff_user):
    dataset = chest_radiograph_dataset(patient_id="CXR-0200")
    dataset.AccessionNumber = "ACC-DCM-1"
    return dicom_ingest(data=dataset_bytes(dataset), source=ImageSource.UPLOAD, uploaded_by=staff_user).image


def test_study_page_shows_dicom_through_its_rendering_and_offers_exports(staff_client, dicom_image):
    study_url = reverse("pages:study-detail", args=[dicom_image.study_id])
    html = staff_client.get(study_url).content.decode()
    render_url = reverse("pages:image-render", args=[dicom_image.id])
    assert f'src="{render_url}?size=320"' in html and f'href="{render_url}"' in html
    assert reverse("pages:image-thumbnail", args=[dicom_image.id]) not in html
    export_url = reverse("pages:study-export", args=[dicom_image.study_id])
    assert f'href="{export_url}"' in html and f'href="{export_url}?anonymised=1"' in html

    thumbnail = staff_client.get(f"{render_url}?size=320")
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/png"
    # The real pixels (a 28x28 radiograph is never enlarged), not the "cannot be displayed" tile.
    assert PILImage.open(io.BytesIO(thumbnail.content)).size == (dicom_image.width, dicom_image.height) == (28, 28)


def test_study_without_dicom_has_no_export_and_keeps_png_thumbnails(staff_client, study):
    image = make_image(study)
    html = staff_client.get(reverse("pages:study-detail", args=[study.id])).content.decode()
    assert reverse("pages:image-thumbnail", args=[image.id]) in html
    assert "Export study (DICOM)" not in html and "export.zip" not in html


def test_succeeded_result_downloads_as_dicom_sr(client_for, staff_user, radiologist_user, dicom_image):
    model = make_aimodel()
    done = make_prediction(dicom_image, model, label="pneumonia", confidence=0.81)
    waiting = make_prediction(dicom_image, make_aimodel(name="other"), status=PredictionStatus.QUEUED)
    report_url = reverse("pages:prediction-report", args=[done.id])

    study_page = client_for(staff_user).get(reverse("pages:study-detail", args=[dicom_image.study_id])).content.decode()
    assert f'href="{report_url}"' in study_page and "Download as DICOM SR" in study_page
    assert reverse("pages:prediction-report", args=[waiting.id]) not in study_page

    radiologist = client_for(radiologist_user)
    review_page = radiologist.get(reverse("pages:review", args=[dicom_image.study_id])).content.decode()
    assert f'href="{report_url}"' in review_page
    assert f'data-image-url="{reverse("pages:image-render", args=[dicom_image.id])}"' in review_page

    response = radiologist.get(report_url)
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom"
    report = pydicom.dcmread(io.BytesIO(response.content))
    assert report.Modality == "SR" and report.PatientID == "CXR-0200"
    assert AuditEvent.objects.filter(
        action=AuditAction.DOWNLOAD, interface=AuditInterface.UI, object_id=str(done.id), actor=radiologist_user
    ).exists()


def test_viewer_of_a_not_analysable_image_says_why(radiologist_client):
    image = dicom_ingest(data=shipped_bytes("JPEG-lossy.dcm"), source=ImageSource.UPLOAD).image
    html = radiologist_client.get(reverse("pages:review", args=[image.study_id])).content.decode()
    assert escape(f"stored, not analysable: {image.not_analysable_reason}") in html
    assert f'data-image-url="{reverse("pages:image-render", args=[image.id])}"' in html
    assert "Download as DICOM SR" not in html


def test_api_carries_dicom_fields_and_the_report_url(client_for, staff_user, dicom_image):
    model = make_aimodel()
    done = make_prediction(dicom_image, model)
    waiting = make_prediction(make_image(dicom_image.study, name="b.png"), model, status=PredictionStatus.QUEUED)
    client = client_for(staff_user)

    image = client.get(f"/api/v1/images/{dicom_image.id}/").json()
    assert image["sop_instance_uid"] == dicom_image.sop_instance_uid
    assert (image["source"], image["analysable"], image["not_analysable_reason"]) == ("upload", True, "")
    assert image["render_url"] == f"http://testserver{reverse('api:image-render', args=[dicom_image.id])}"

    assert client.get(f"/api/v1/predictions/{done.id}/").json()["report_url"] == (
        f"http://testserver{reverse('api:prediction-report', args=[done.id])}"
    )
    assert client.get(f"/api/v1/predictions/{waiting.id}/").json()["report_url"] is None


def test_a_new_instance_of_a_stored_study_joins_it(staff_client, dicom_image):
    dataset = pydicom.dcmread(io.BytesIO(dicom_image.file.open("rb").read()))
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    [result] = import_json(staff_client, dcm("second.dcm", dataset_bytes(dataset))).json()["results"]
    assert result["ok"] and result["study_url"] == reverse("pages:study-detail", args=[dicom_image.study_id])
    assert Study.objects.count() == 1 and Image.objects.count() == 2
