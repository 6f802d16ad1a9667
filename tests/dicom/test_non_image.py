"""Non-image instances (SR, KOS, presentation states, waveforms, encapsulated PDF, RT objects: no PixelData)
are stored through the one intake like any image: kept byte for byte, filed in their study and series,
never analysed, never rendered, and shown on the study page as what they are."""

import pytest
from django.core.files.storage import default_storage

from imaging.intake import IncomingFile, files_intake
from imaging.models import ImageSource
from inference.models import Prediction
from tests.dicom.support import chest_radiograph_dataset, dataset_bytes
from tests.dicom.synthetic import NON_IMAGE_CLASSES, basic_text_sr, non_image

pytestmark = pytest.mark.django_db

ADA = {"id": "CXR-0001", "name": "Lovelace^Ada"}


def take(data: bytes, source=ImageSource.STOW_RS):
    [intake] = files_intake(files=[IncomingFile.from_bytes(data, "x.dcm")], source=source)
    return intake


def radiograph_study():
    """A chest radiograph filed by its tags; the tiny model applies to its study."""
    dataset = chest_radiograph_dataset(patient_id=ADA["id"], patient_name=ADA["name"], birth_date="19700101")
    intake = take(dataset_bytes(dataset))
    assert intake.stored
    study = {"uid": dataset.StudyInstanceUID, "accession": dataset.AccessionNumber, "description": "XR CHEST PA"}
    return intake.image, study


@pytest.mark.parametrize("kind", sorted(NON_IMAGE_CLASSES))
def test_a_non_image_instance_is_filed_in_its_study_kept_as_sent_and_not_analysed(kind, tiny_model):
    radiograph, study = radiograph_study()
    assert Prediction.objects.filter(image=radiograph).count() == 1  # the model applies to this study
    data = non_image(kind, patient=ADA, study=study)
    intake = take(data)
    assert intake.stored and intake.created, intake.error
    image = intake.image
    assert image.study == radiograph.study
    assert image.sop_class_uid == NON_IMAGE_CLASSES[kind][0] and image.modality == NON_IMAGE_CLASSES[kind][1]
    assert not image.has_pixels and (image.width, image.height, image.number_of_frames) == (0, 0, 0)
    assert not image.analysable and image.not_analysable_reason == f"Not an image ({image.sop_class_name})."
    assert image.sop_class_name and "Storage" in image.sop_class_name
    with default_storage.open(image.file.name) as handle:
        assert handle.read() == data  # byte for byte
    assert not Prediction.objects.filter(image=image).exists()  # never analysed
    assert take(data).image == image and not take(data).created  # the same instance again: stored once


def test_a_report_alone_creates_its_study_and_patient():
    intake = take(basic_text_sr(patient={"id": "SR-0001", "name": "Report^Only"}))
    assert intake.stored and intake.study_created and intake.patient_created
    assert intake.image.study.patient.mrn == "SR-0001" and intake.image.sop_class_name == "Basic Text SR Storage"


def test_an_image_class_without_pixel_data_is_still_refused_as_truncated():
    dataset = chest_radiograph_dataset()
    del dataset.PixelData
    intake = take(dataset_bytes(dataset))
    assert not intake.stored and "ends before its pixel data" in intake.error


def test_the_study_page_names_it_links_the_file_and_never_renders_it(client, staff_user, api_client):
    radiograph, study = radiograph_study()
    data = non_image("pdf", patient=ADA, study=study)
    image = take(data).image
    client.force_login(staff_user)
    page = client.get(f"/studies/{radiograph.study_id}/").content.decode()
    assert "<span data-sop-class>Encapsulated PDF Storage</span> (DOC)" in page and "Not an image (Encapsulated" in page
    assert f"/images/{image.id}/instance.dcm" in page
    assert f"/images/{image.id}/render.png" not in page  # no thumbnail asked for
    assert f"/images/{radiograph.id}/render.png" in page

    download = client.get(f"/images/{image.id}/instance.dcm")
    assert download.status_code == 200 and download["Content-Type"] == "application/dicom"
    assert b"".join(download.streaming_content) == data
    rendered = client.get(f"/images/{image.id}/render.png?size=320")
    assert rendered.status_code == 409 and "not an image (Encapsulated PDF Storage)" in rendered.content.decode()
    api_client.force_authenticate(staff_user)
    assert api_client.get(f"/api/v1/images/{image.id}/render/").status_code == 409
