import io
import zipfile

import pydicom
import pytest
from PIL import Image as PILImage

from imaging.dicom.deid import pseudonym
from imaging.dicom.export import study_export_stream
from imaging.dicom.services import dicom_ingest
from imaging.intake import image_upload
from imaging.models import ImageSource
from inference.claims import prediction_record_failure, prediction_record_success, predictions_claim
from inference.dicom_report import (
    COMPREHENSIVE_SR_STORAGE,
    DISCLAIMER,
    NOT_RUN_DISCLAIMER,
    NOT_RUN_MEANING,
    PRIVATE_SCHEME,
    prediction_sr_bytes,
    prediction_sr_dataset,
)
from inference.models import Prediction
from tests.dicom.support import retagged, shipped_bytes
from tests.factories import StudyFactory


def succeed(prediction: Prediction, probabilities=(0.2, 0.8)) -> Prediction:
    """Record a result as the worker does (claim, then write under the claim)."""
    claim = predictions_claim(prediction_id=prediction.id)
    assert claim is not None
    for claimed in claim.predictions:
        assert prediction_record_success(
            prediction=claimed, token=claim.token, probabilities=list(probabilities), inference_ms=1.0
        )
    prediction.refresh_from_db()
    return prediction


DECLINED = (
    "Not run: this image does not look like the chest X-ray images this model was trained on, so no label was given."
)


def decline(prediction: Prediction, reason: str = DECLINED) -> Prediction:
    """Record a refusal as the worker does when the model's input check declines the image."""
    claim = predictions_claim(prediction_id=prediction.id)
    assert claim is not None
    for claimed in claim.predictions:
        assert prediction_record_failure(prediction=claimed, token=claim.token, reason=reason)
    prediction.refresh_from_db()
    return prediction


def content_items(dataset) -> list:
    items = []
    for item in dataset.ContentSequence:
        items.append(item)
        if "ContentSequence" in item:
            items.extend(content_items(item))
    return items


def concept(item) -> str:
    return item.ConceptNameCodeSequence[0].CodeMeaning


@pytest.mark.django_db
def test_structured_report_round_trips_with_the_patient_and_study_of_the_image(tiny_model, chest_radiograph):
    data = chest_radiograph(patient_id="CXR-0042", patient_name="Curie^Marie")
    original = pydicom.dcmread(io.BytesIO(data))
    image = dicom_ingest(data=data, source=ImageSource.C_STORE).image
    prediction = succeed(Prediction.objects.get(image=image))

    report = pydicom.dcmread(io.BytesIO(prediction_sr_bytes(prediction=prediction)))
    assert report.SOPClassUID == COMPREHENSIVE_SR_STORAGE and report.Modality == "SR"
    assert report.PatientID == original.PatientID == "CXR-0042"
    assert str(report.PatientName) == str(original.PatientName)
    assert report.StudyInstanceUID == original.StudyInstanceUID
    assert report.AccessionNumber == original.AccessionNumber
    assert report.SeriesInstanceUID != original.SeriesInstanceUID
    assert report.SOPInstanceUID != original.SOPInstanceUID
    evidence = report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == original.SOPInstanceUID

    items = {concept(item): item for item in content_items(report)}
    assert items["Algorithm Name"].TextValue == tiny_model.name
    assert items["Algorithm Version"].TextValue == tiny_model.version
    assert items["Finding"].TextValue == prediction.label == "pneumonia"
    confidence = items["Calibrated confidence"].MeasuredValueSequence[0]
    assert float(confidence.NumericValue) == pytest.approx(prediction.confidence * 100, abs=1e-3)
    assert confidence.MeasurementUnitsCodeSequence[0].CodeValue == "%"
    assert items["Comment"].TextValue == DISCLAIMER
    assert items["Source of Measurement"].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == original.SOPInstanceUID

    again = pydicom.dcmread(io.BytesIO(prediction_sr_bytes(prediction=prediction)))
    assert again.SOPInstanceUID == report.SOPInstanceUID  # one report per result, however often downloaded


@pytest.mark.django_db
def test_report_of_a_declined_image_states_why_and_gives_no_finding(tiny_model, chest_radiograph):
    data = chest_radiograph(patient_id="CXR-0043")
    original = pydicom.dcmread(io.BytesIO(data))
    prediction = decline(Prediction.objects.get(image=dicom_ingest(data=data, source=ImageSource.C_STORE).image))
    assert prediction.not_run

    report = pydicom.dcmread(io.BytesIO(prediction_sr_bytes(prediction=prediction)))
    assert report.SOPClassUID == COMPREHENSIVE_SR_STORAGE and report.Modality == "SR"
    assert report.CompletionFlag == "COMPLETE" and report.VerificationFlag == "UNVERIFIED"
    assert report.PatientID == "CXR-0043" and report.StudyInstanceUID == original.StudyInstanceUID
    assert report.SoftwareVersions == tiny_model.version
    items = {concept(item): item for item in content_items(report)}
    assert items["Algorithm Name"].TextValue == tiny_model.name
    assert items["Algorithm Version"].TextValue == tiny_model.version
    assert items["Device Observer Model Name"].TextValue == tiny_model.name
    not_given = items[NOT_RUN_MEANING]
    assert not_given.ValueType == "TEXT" and not_given.TextValue == DECLINED
    assert (
        not_given.ConceptNameCodeSequence[0].CodeValue,
        not_given.ConceptNameCodeSequence[0].CodingSchemeDesignator,
    ) == (
        "NOT_RUN",
        PRIVATE_SCHEME,
    )
    assert not {"Finding", "Calibrated confidence", "Class probabilities"} & items.keys()
    assert not [item for item in content_items(report) if item.ValueType == "NUM"]
    assert items["Comment"].TextValue == NOT_RUN_DISCLAIMER and "confidence" not in NOT_RUN_DISCLAIMER
    assert items["Source of Measurement"].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == original.SOPInstanceUID
    again = pydicom.dcmread(io.BytesIO(prediction_sr_bytes(prediction=prediction)))
    assert again.SOPInstanceUID == report.SOPInstanceUID


@pytest.mark.django_db
def test_a_genuine_failure_has_no_report(tiny_model, chest_radiograph):
    image = dicom_ingest(data=chest_radiograph(), source=ImageSource.C_STORE).image
    prediction = decline(Prediction.objects.get(image=image), reason="The image file is missing from storage.")
    assert prediction.status == "failed" and not prediction.not_run
    with pytest.raises(ValueError):
        prediction_sr_dataset(prediction=prediction)


@pytest.mark.django_db
def test_report_of_a_png_image_carries_the_patient_record(tiny_model, sample_image_bytes):
    study = StudyFactory()
    image = image_upload(study=study, data=sample_image_bytes("cxr-normal-1.png")).image
    prediction = succeed(Prediction.objects.get(image=image), probabilities=(0.9, 0.1))
    report = pydicom.dcmread(io.BytesIO(prediction_sr_bytes(prediction=prediction)))
    assert report.PatientID == study.patient.mrn
    assert report.AccessionNumber == study.accession_number
    assert report.StudyInstanceUID.startswith("2.25.")


@pytest.mark.django_db
def test_report_download_view(client, staff_user, tiny_model, chest_radiograph):
    image = dicom_ingest(data=chest_radiograph(), source=ImageSource.UPLOAD).image
    prediction = Prediction.objects.get(image=image)
    client.force_login(staff_user)
    assert client.get(f"/predictions/{prediction.id}/report.dcm").status_code == 409  # still queued
    succeed(prediction)
    response = client.get(f"/predictions/{prediction.id}/report.dcm")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom"
    assert "attachment" in response["Content-Disposition"]
    assert pydicom.dcmread(io.BytesIO(response.content)).Modality == "SR"


@pytest.mark.django_db
def test_report_download_view_and_api_serve_a_refusal_but_not_a_failure(
    client, api_client, staff_user, radiologist_user, tiny_model, chest_radiograph
):
    declined = decline(
        Prediction.objects.get(image=dicom_ingest(data=chest_radiograph(), source=ImageSource.UPLOAD).image)
    )
    failed = decline(
        Prediction.objects.get(image=dicom_ingest(data=chest_radiograph(), source=ImageSource.UPLOAD).image),
        reason="The model failed to run: out of memory",
    )
    client.force_login(staff_user)
    api_client.force_authenticate(staff_user)
    study_page = client.get(f"/studies/{declined.image.study_id}/").content.decode()
    assert f"/predictions/{declined.id}/report.dcm" in study_page
    for url in (f"/predictions/{declined.id}/report.dcm", f"/api/v1/predictions/{declined.id}/report/"):
        response = (api_client if url.startswith("/api/") else client).get(url)
        assert response.status_code == 200, url
        assert response["Content-Type"] == "application/dicom"
        report = pydicom.dcmread(io.BytesIO(response.content))
        assert {concept(item): item for item in content_items(report)}[NOT_RUN_MEANING].TextValue == DECLINED
    assert (
        api_client.get(f"/api/v1/predictions/{declined.id}/")
        .json()["report_url"]
        .endswith(f"/api/v1/predictions/{declined.id}/report/")
    )
    assert api_client.get(f"/api/v1/predictions/{failed.id}/").json()["report_url"] is None
    study_page = client.get(f"/studies/{failed.image.study_id}/").content.decode()
    assert f"/predictions/{failed.id}/report.dcm" not in study_page
    assert client.get(f"/predictions/{failed.id}/report.dcm").status_code == 409
    assert api_client.get(f"/api/v1/predictions/{failed.id}/report/").status_code == 409

    client.force_login(radiologist_user)
    for prediction, offered in ((declined, True), (failed, False)):
        page = client.get(f"/review/{prediction.image.study_id}/?prediction={prediction.id}")
        assert page.status_code == 200
        assert (f"/predictions/{prediction.id}/report.dcm" in page.content.decode()) is offered


@pytest.mark.django_db
def test_report_needs_a_role(client, tiny_model, chest_radiograph):
    image = dicom_ingest(data=chest_radiograph(), source=ImageSource.UPLOAD).image
    prediction = succeed(Prediction.objects.get(image=image))
    # A page: anonymous visitors are sent to sign in (machine clients use /api/v1/predictions/<id>/report/).
    response = client.get(f"/predictions/{prediction.id}/report.dcm")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_anonymised_export_has_no_original_identity(client, radiologist_user):
    first = dicom_ingest(data=retagged("CT_small.dcm", BurnedInAnnotation="NO"), source=ImageSource.UPLOAD)
    dicom_ingest(
        data=retagged("CT_small.dcm", InstitutionName="St Elsewhere", BurnedInAnnotation="NO"),
        source=ImageSource.UPLOAD,
    )
    original = pydicom.dcmread(io.BytesIO(shipped_bytes("CT_small.dcm")))
    study = first.study
    client.force_login(radiologist_user)

    response = client.get(f"/studies/{study.id}/export.zip?anonymised=1")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = [name for name in archive.namelist() if name.endswith(".dcm")]
    assert len(names) == 2
    identifying = [
        str(original.PatientName).encode(),
        original.PatientName.family_name.encode(),
        original.PatientID.encode(),
        original.StudyInstanceUID.encode(),
        b"St Elsewhere",
    ]
    study_uids = set()
    for name in archive.namelist():
        raw = archive.read(name)
        for value in identifying:
            assert value not in raw, (name, value)
    for name in names:
        dataset = pydicom.dcmread(io.BytesIO(archive.read(name)))
        assert dataset.PatientID == pseudonym(original.PatientID)
        assert str(dataset.PatientName) == pseudonym(original.PatientID)
        assert dataset.PatientIdentityRemoved == "YES"
        assert dataset.PatientBirthDate == "" and dataset.StudyDate == ""
        assert dataset.SOPClassUID == original.SOPClassUID  # standard UIDs stay
        study_uids.add(dataset.StudyInstanceUID)
        assert dataset.file_meta.MediaStorageSOPInstanceUID == dataset.SOPInstanceUID
        assert dataset.pixel_array.shape == (128, 128)  # the image itself is intact
    assert len(study_uids) == 1 and original.StudyInstanceUID not in study_uids  # consistent pseudonym

    again = zipfile.ZipFile(io.BytesIO(b"".join(study_export_stream(study=study, anonymised=True))))
    again_uids = {
        pydicom.dcmread(io.BytesIO(again.read(n))).StudyInstanceUID for n in again.namelist() if n.endswith(".dcm")
    }
    assert again_uids == study_uids  # the same pseudonyms in every export


@pytest.mark.django_db
def test_plain_export_has_the_original_files(client, staff_user):
    data = shipped_bytes("MR_small.dcm")
    study = dicom_ingest(data=data, source=ImageSource.UPLOAD).study
    client.force_login(staff_user)
    response = client.get(f"/studies/{study.id}/export.zip")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert [archive.read(name) for name in archive.namelist()] == [data]


@pytest.mark.django_db
def test_render_view_gives_a_png_and_a_thumbnail(client, staff_user, chest_radiograph):
    image = dicom_ingest(data=chest_radiograph(), source=ImageSource.UPLOAD).image
    client.force_login(staff_user)
    full = client.get(f"/images/{image.id}/render.png")
    assert full.status_code == 200 and full["Content-Type"] == "image/png"
    assert PILImage.open(io.BytesIO(full.content)).size == (image.width, image.height)
    thumb = PILImage.open(io.BytesIO(client.get(f"/images/{image.id}/render.png?size=16").content))
    assert max(thumb.size) == 16


@pytest.mark.django_db
def test_render_view_explains_an_undecodable_image(client, staff_user):
    image = dicom_ingest(data=shipped_bytes("JPEG-lossy.dcm"), source=ImageSource.UPLOAD).image
    client.force_login(staff_user)
    response = client.get(f"/images/{image.id}/render.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
