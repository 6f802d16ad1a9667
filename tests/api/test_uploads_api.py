import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from imaging.models import Image, StudyStatus
from inference.models import Prediction, PredictionStatus
from tests.factories import StudyFactory
from tests.support.images import png_bytes, png_claiming_size, stored_files, truncated_png

pytestmark = pytest.mark.django_db


def upload(client, study, *files):
    parts = [SimpleUploadedFile(name, data, content_type="application/octet-stream") for name, data in files]
    return client.post(f"/api/v1/studies/{study.id}/images/", {"file": parts}, format="multipart")


def test_upload_creates_image_and_queues_a_second_opinion(client_for_role, tiny_model):
    study = StudyFactory()
    response = upload(client_for_role("staff"), study, ("chest.png", png_bytes(40, 30)))
    assert response.status_code == 201, response.json()
    [image] = response.json()["images"]
    assert image["created"] is True
    assert (image["width"], image["height"]) == (40, 30)
    assert image["original_filename"] == "chest.png"
    [prediction] = image["predictions"]
    assert prediction["status"] == PredictionStatus.QUEUED
    assert prediction["model"]["name"] == tiny_model.name
    assert prediction["model"]["version"] == tiny_model.version
    assert prediction["is_second_opinion"] is True
    assert "not a diagnosis" in prediction["disclaimer"]
    stored = Image.objects.get(id=image["id"])
    assert "chest" not in stored.file.name
    study.refresh_from_db()
    assert study.status == StudyStatus.AI_PENDING


def test_several_files_in_one_request(client_for_role):
    study = StudyFactory()
    response = upload(client_for_role("staff"), study, ("a.png", png_bytes(color=1)), ("b.png", png_bytes(color=2)))
    assert response.status_code == 201
    assert len(response.json()["images"]) == 2
    assert study.images.count() == 2


def test_the_same_file_again_is_200_with_the_existing_image(client_for_role):
    study = StudyFactory()
    client = client_for_role("staff")
    first = upload(client, study, ("a.png", png_bytes()))
    again = upload(client, study, ("renamed.png", png_bytes()))
    assert again.status_code == 200
    assert again.json()["images"][0]["id"] == first.json()["images"][0]["id"]
    assert again.json()["images"][0]["created"] is False
    assert Image.objects.count() == 1


def test_filename_with_a_path_is_kept_for_display_only(client_for_role):
    study = StudyFactory()
    response = upload(client_for_role("staff"), study, ("../../etc/passwd.png", png_bytes()))
    assert response.status_code == 201
    image = Image.objects.get()
    assert image.original_filename == "passwd.png"
    assert image.file.name.startswith("images/")
    assert ".." not in image.file.name


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("broken.png", truncated_png(), "corrupt or truncated"),
        ("notes.txt", b"This is a text file, not an image.\n" * 10, "not a PNG or JPEG"),
        ("bomb.png", png_claiming_size(100_000, 100_000), "pixels"),
        ("empty.png", b"", "empty"),
    ],
)
def test_rejected_files_give_400_and_leave_nothing_behind(client_for_role, tiny_model, name, data, message):
    study = StudyFactory()
    files_before = stored_files()
    response = upload(client_for_role("staff"), study, ("good.png", png_bytes()), (name, data))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "image_rejected"
    assert message in error["message"]
    assert error["fields"]["file"][0].startswith(f"{name}: ")
    assert Image.objects.count() == 0
    assert Prediction.objects.count() == 0
    assert stored_files() == files_before


@override_settings(MEDPORTAL_MAX_IMAGE_PIXELS=100)
def test_pixel_limit_applies(client_for_role):
    study = StudyFactory()
    response = upload(client_for_role("staff"), study, ("big.png", png_bytes(20, 20)))
    assert response.status_code == 400
    assert "limit is 100 pixels" in response.json()["error"]["message"]
    assert Image.objects.count() == 0


@override_settings(MEDPORTAL_MAX_UPLOAD_BYTES=50)
def test_byte_limit_applies(client_for_role):
    response = upload(client_for_role("staff"), StudyFactory(), ("big.png", png_bytes(64, 64)))
    assert response.status_code == 400
    assert "limit" in response.json()["error"]["message"]
    assert Image.objects.count() == 0


def test_no_file_is_a_field_error(client_for_role):
    response = client_for_role("staff").post(f"/api/v1/studies/{StudyFactory().id}/images/", {}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()["error"]["fields"]


@pytest.mark.parametrize(("role", "expected"), [("anonymous", 401), ("roleless", 403), ("radiologist", 403)])
def test_only_staff_upload(client_for_role, role, expected):
    response = upload(client_for_role(role), StudyFactory(), ("a.png", png_bytes()))
    assert response.status_code == expected
    assert Image.objects.count() == 0


def test_download_returns_the_bytes_under_a_safe_name(client_for_role):
    study = StudyFactory()
    data = png_bytes(color=9)
    client = client_for_role("staff")
    image_id = upload(client, study, ('we"ird name.png', data)).json()["images"][0]["id"]
    response = client_for_role("radiologist").get(f"/api/v1/images/{image_id}/file/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert f'filename="{image_id}.png"' in response["Content-Disposition"]
    assert b"".join(response.streaming_content) == data
