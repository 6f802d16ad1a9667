import io

import pydicom
import pytest
from django.core.files.storage import default_storage
from pydicom.uid import generate_uid

from imaging.dicom.services import dicom_ingest
from imaging.intake import image_upload
from imaging.models import BodyPart, Image, ImageSource, Modality, Study
from imaging.pixels import image_pixels
from imaging.storage import blob_read
from imaging.validation import ImageRejected
from inference.models import Prediction, PredictionStatus
from inference.services import aimodel_register
from patients.models import Patient
from tests.conftest import tiny_card
from tests.dicom.support import retagged, shipped_bytes, shipped_path
from tests.factories import PatientFactory, StudyFactory


def _stored_files() -> set[str]:
    if not default_storage.exists("images"):
        return set()
    found = set()
    for folder in default_storage.listdir("images")[0]:
        found |= {f"images/{folder}/{name}" for name in default_storage.listdir(f"images/{folder}")[1]}
    return found


@pytest.mark.django_db
def test_ct_creates_patient_and_study_from_tags_and_keeps_the_file_untouched(staff_user):
    data = shipped_bytes("CT_small.dcm")
    tags = pydicom.dcmread(shipped_path("CT_small.dcm"))
    result = dicom_ingest(data=data, source=ImageSource.UPLOAD, uploaded_by=staff_user, filename="ct.dcm")
    assert result.created and result.patient_created and result.study_created
    image = result.image
    assert blob_read(image.file.name) == data
    assert image.content_type == "application/dicom"
    assert image.sop_instance_uid == tags.SOPInstanceUID
    assert image.series_instance_uid == tags.SeriesInstanceUID
    assert (image.width, image.height) == (128, 128)
    assert image.analysable and image.source == ImageSource.UPLOAD
    study = image.study
    assert study.study_instance_uid == tags.StudyInstanceUID
    assert study.modality == Modality.CT and study.body_part == BodyPart.OTHER
    assert study.study_date.strftime("%Y%m%d") == tags.StudyDate
    assert study.accession_number  # CT_small has none: one is generated
    patient = study.patient
    assert patient.mrn == tags.PatientID
    assert patient.family_name == tags.PatientName.family_name


@pytest.mark.django_db
def test_same_instance_twice_is_stored_once():
    data = shipped_bytes("MR_small.dcm")
    first = dicom_ingest(data=data, source=ImageSource.UPLOAD)
    again = dicom_ingest(data=shipped_bytes("MR_small_implicit.dcm"), source=ImageSource.C_STORE)  # same SOP UID
    assert first.created and not again.created
    assert again.image.id == first.image.id
    assert Image.objects.count() == 1 and Study.objects.count() == 1 and Patient.objects.count() == 1


@pytest.mark.django_db
def test_instances_of_one_study_share_it():
    one = dicom_ingest(data=retagged("CT_small.dcm"), source=ImageSource.UPLOAD)
    two = dicom_ingest(data=retagged("CT_small.dcm"), source=ImageSource.UPLOAD)
    assert one.image.id != two.image.id
    assert one.study.id == two.study.id and not two.study_created


@pytest.mark.django_db
def test_truncated_file_is_rejected_and_nothing_is_stored():
    before = _stored_files()
    with pytest.raises(ImageRejected, match="truncated"):
        dicom_ingest(data=shipped_bytes("CT_small.dcm")[:30_000], source=ImageSource.UPLOAD)
    assert not Image.objects.exists() and not Study.objects.exists() and not Patient.objects.exists()
    assert _stored_files() == before


@pytest.mark.django_db
def test_undecodable_compressed_instance_is_kept_and_not_analysed(tiny_model_file):
    # A model that would read this study if the pixels could be decoded.
    aimodel_register(
        weights_path=tiny_model_file, card=tiny_card(name="tiny-other", modalities=["OT"], body_part="OTHER")
    )
    result = dicom_ingest(data=shipped_bytes("JPEG-lossy.dcm"), source=ImageSource.UPLOAD)
    image = result.image
    assert result.created and not image.analysable
    assert "JPEG Extended" in image.not_analysable_reason
    assert not Prediction.objects.filter(image=image).exists()


@pytest.mark.django_db
def test_chest_radiograph_is_routed_to_the_chest_model(tiny_model, chest_radiograph):
    result = dicom_ingest(data=chest_radiograph(), source=ImageSource.C_STORE)
    study = result.study
    assert (study.modality, study.body_part) == (Modality.CR, BodyPart.CHEST)
    predictions = list(Prediction.objects.filter(image=result.image))
    assert [(p.model_id, p.status) for p in predictions] == [(tiny_model.id, PredictionStatus.QUEUED)]


@pytest.mark.django_db
def test_image_upload_takes_dicom_into_the_matching_study(staff_user, chest_radiograph):
    patient = PatientFactory(mrn="CXR-0001")
    study = StudyFactory(patient=patient, accession_number="ORDER-1")
    result = image_upload(study=study, data=chest_radiograph(patient=patient), filename="x.dcm")
    study.refresh_from_db()
    assert result.created and result.image.study_id == study.id
    assert study.study_instance_uid  # adopted from the file
    assert result.image.original_filename == "x.dcm"


@pytest.mark.django_db
def test_image_upload_refuses_dicom_of_another_patient(chest_radiograph):
    study = StudyFactory(patient=PatientFactory(mrn="SOMEONE-ELSE"))
    with pytest.raises(ImageRejected, match="patient"):
        image_upload(study=study, data=chest_radiograph(patient_id="CXR-0001"))
    assert not Image.objects.exists()


@pytest.mark.django_db
def test_study_ordered_by_accession_number_receives_its_images(chest_radiograph):
    patient = PatientFactory(mrn="CXR-0002")
    ordered = StudyFactory(patient=patient, accession_number="ACC-77")
    data = chest_radiograph(patient=patient)
    dataset = pydicom.dcmread(io.BytesIO(data))
    dataset.AccessionNumber = "ACC-77"
    dataset.SOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    result = dicom_ingest(data=buffer.getvalue(), source=ImageSource.STOW_RS)
    assert result.study.id == ordered.id


@pytest.mark.django_db
def test_dicom_image_pixels_for_the_worker(chest_radiograph):
    image = dicom_ingest(data=chest_radiograph(), source=ImageSource.UPLOAD).image
    pixels = image_pixels(image)
    assert pixels.dtype.name == "uint8" and pixels.shape == (image.height, image.width)
