"""Instances that are not images (SR, RT Plan, ...) are stored through the one intake path like any
other, searchable and retrievable, and never analysed."""

import io

import pydicom
import pytest
from django.test import Client

from imaging.dicomweb.multipart import parse_multipart_related
from imaging.intake import IncomingFile, files_intake
from imaging.models import ImageSource
from inference.models import Prediction
from tests.api.helpers import make_aimodel
from tests.dicom.support import chest_radiograph_dataset, dataset_bytes, shipped_bytes, shipped_path
from tests.dicom.synthetic import basic_text_sr

pytestmark = pytest.mark.django_db


def _intake(data: bytes, user):
    [intake] = files_intake(files=[IncomingFile.from_bytes(data)], source=ImageSource.STOW_RS, uploaded_by=user)
    assert intake.stored, intake.error
    return intake.image


def test_a_report_joins_its_study_and_gets_no_ai_work(staff_user):
    make_aimodel()  # reads CR chest images
    radiograph = chest_radiograph_dataset()
    image = _intake(dataset_bytes(radiograph), staff_user)
    patient = {"id": radiograph.PatientID, "name": str(radiograph.PatientName)}
    study = {"uid": radiograph.StudyInstanceUID, "accession": radiograph.AccessionNumber, "description": "CXR"}
    sr = pydicom.dcmread(io.BytesIO(basic_text_sr(patient=patient, study=study)))
    sr.PatientBirthDate, sr.PatientSex = radiograph.PatientBirthDate, radiograph.get("PatientSex", "")
    report = _intake(dataset_bytes(sr), staff_user)

    assert report.study_id == image.study_id
    assert (report.width, report.height, report.number_of_frames, report.modality) == (0, 0, 0, "SR")
    assert not report.analysable
    assert report.not_analysable_reason == "Not an image (Basic Text SR Storage)."
    assert Prediction.objects.filter(image=image).count() == 1
    assert not Prediction.objects.filter(image=report).exists()

    client = Client()
    client.force_login(staff_user)
    page = client.get(f"/studies/{image.study_id}/").content.decode()
    assert "Not an image (Basic Text SR Storage)." in page


def test_a_non_image_instance_is_searched_and_retrieved_over_dicomweb(api_client, staff_user):
    plan_bytes = shipped_bytes("rtplan.dcm")
    plan = pydicom.dcmread(shipped_path("rtplan.dcm"))
    _intake(plan_bytes, staff_user)
    api_client.force_authenticate(staff_user)
    study = f"/dicomweb/studies/{plan.StudyInstanceUID}"
    instance = f"{study}/series/{plan.SeriesInstanceUID}/instances/{plan.SOPInstanceUID}"

    [found] = api_client.get("/dicomweb/studies", {"ModalitiesInStudy": "RTPLAN"}).json()
    assert pydicom.Dataset.from_json(found).StudyInstanceUID == plan.StudyInstanceUID
    [listed] = api_client.get(f"{study}/instances").json()
    listed = pydicom.Dataset.from_json(listed)
    assert listed.SOPClassUID == plan.SOPClassUID and "Rows" not in listed

    retrieved = api_client.get(instance, HTTP_ACCEPT='multipart/related; type="application/dicom"; transfer-syntax=*')
    assert retrieved.status_code == 200
    _, [part] = parse_multipart_related(b"".join(retrieved.streaming_content), retrieved["Content-Type"])
    assert part.data == plan_bytes  # as sent, byte for byte
    # Re-encoded to the default transfer syntax, it is still the same plan.
    default = api_client.get(instance, HTTP_ACCEPT='multipart/related; type="application/dicom"')
    _, [part] = parse_multipart_related(b"".join(default.streaming_content), default["Content-Type"])
    assert pydicom.dcmread(io.BytesIO(part.data)).RTPlanLabel == plan.RTPlanLabel

    # Asked for compressed (with a study's images, say): nothing to compress, so Explicit VR Little Endian.
    compressed = api_client.get(
        instance, HTTP_ACCEPT='multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90'
    )
    assert compressed.status_code == 200
    _, [part] = parse_multipart_related(b"".join(compressed.streaming_content), compressed["Content-Type"])
    assert part.content_type == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    assert pydicom.dcmread(io.BytesIO(part.data)).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"

    assert pydicom.Dataset.from_json(api_client.get(f"{instance}/metadata").json()[0]).RTPlanLabel == plan.RTPlanLabel
    # Nothing to render or cut into frames.
    assert api_client.get(f"{instance}/frames/1").status_code == 404
    assert api_client.get(f"{instance}/rendered", HTTP_ACCEPT="image/jpeg").status_code == 404
