"""The AI second opinion stored into its DICOM study as an SR: a new instance per revision, once
the result or review commits, never twice, never for PNG/JPEG studies, never at the result's cost."""

import io

import pydicom
import pytest

from imaging.intake import IncomingFile, files_intake, image_upload
from imaging.models import Image, ImageSource
from inference import reports, runtime
from inference.dicom_report import DISCLAIMER, NOT_RUN_MEANING, SR_SERIES_DESCRIPTION, prediction_sr_bytes
from inference.models import AIModel, Prediction, PredictionReport, PredictionStatus
from inference.reports import prediction_report_store
from inference.services import predictions_rerun, review_amend, review_create
from tests.dicom.test_reports_and_export import DECLINED, concept, content_items, decline, succeed
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db


def _dicom_prediction(chest_radiograph) -> Prediction:
    [intake] = files_intake(files=[IncomingFile.from_bytes(chest_radiograph())], source=ImageSource.C_STORE)
    return Prediction.objects.get(image=intake.image)


def _reports(prediction: Prediction) -> list[pydicom.Dataset]:
    images = [record.image for record in PredictionReport.objects.filter(prediction=prediction).order_by("revision")]
    return [pydicom.dcmread(image.file.open("rb")) for image in images]


def _items(dataset) -> dict:
    return {concept(item): item for item in content_items(dataset)}


def test_a_succeeded_prediction_stores_its_report_into_the_study_after_commit(
    tiny_model, chest_radiograph, django_capture_on_commit_callbacks
):
    prediction = _dicom_prediction(chest_radiograph)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        prediction = succeed(prediction)
    assert not PredictionReport.objects.exists()  # nothing before the commit
    assert len(callbacks) == 1
    callbacks[0]()

    [record] = PredictionReport.objects.all()
    assert (record.revision, record.error) == (1, "")
    stored = record.image
    assert stored.study_id == prediction.image.study_id and stored.modality == "SR" and not stored.analysable
    assert stored.sop_instance_uid == record.sop_instance_uid
    [report] = _reports(prediction)
    assert report.SeriesDescription.startswith(SR_SERIES_DESCRIPTION) and report.InstanceNumber == 1
    items = _items(report)
    assert items["Finding"].TextValue == prediction.label
    assert items["Algorithm Version"].TextValue == tiny_model.version
    assert float(items["Calibrated confidence"].MeasuredValueSequence[0].NumericValue) == pytest.approx(
        prediction.confidence * 100, abs=1e-3
    )
    assert {concept(item) for item in items["Class probabilities"].ContentSequence} == {
        f"Probability of {label}" for label in tiny_model.labels
    }
    assert items["Comment"].TextValue == DISCLAIMER
    assert "Radiologist review" not in items
    assert Prediction.objects.count() == 1  # the report is never analysed


def test_each_review_and_amendment_stores_a_new_revision_in_the_same_series(
    tiny_model, chest_radiograph, radiologist_user, django_capture_on_commit_callbacks
):
    prediction = _dicom_prediction(chest_radiograph)
    with django_capture_on_commit_callbacks(execute=True):
        prediction = succeed(prediction)
    with django_capture_on_commit_callbacks(execute=True):
        review = review_create(prediction=prediction, reviewer=radiologist_user, decision="agree")
    with django_capture_on_commit_callbacks(execute=True):
        review_amend(
            review=review,
            user=radiologist_user,
            decision="override",
            final_label="normal",
            reason="Second look at the lateral view.",
        )

    first, reviewed, amended = _reports(prediction)
    assert [r.revision for r in PredictionReport.objects.filter(prediction=prediction)] == [1, 2, 3]
    assert len({first.SOPInstanceUID, reviewed.SOPInstanceUID, amended.SOPInstanceUID}) == 3
    assert first.SeriesInstanceUID == reviewed.SeriesInstanceUID == amended.SeriesInstanceUID
    assert [first.InstanceNumber, reviewed.InstanceNumber, amended.InstanceNumber] == [1, 2, 3]
    assert _items(reviewed)["Radiologist review"].TextValue.startswith("Agree: pneumonia")
    assert _items(amended)["Radiologist review"].TextValue.startswith("Override: normal")
    # The download is the current revision, the very instance stored.
    downloaded = pydicom.dcmread(io.BytesIO(prediction_sr_bytes(prediction=prediction)))
    assert downloaded.SOPInstanceUID == amended.SOPInstanceUID


def test_storing_again_stores_nothing_twice(tiny_model, chest_radiograph, django_capture_on_commit_callbacks):
    prediction = _dicom_prediction(chest_radiograph)
    with django_capture_on_commit_callbacks(execute=True):
        prediction = succeed(prediction)
    images = Image.objects.count()
    again = prediction_report_store(prediction_id=prediction.id)
    # Even with the record lost (a task retried after storing, before recording), the UID finds the instance.
    PredictionReport.objects.all().delete()
    third = prediction_report_store(prediction_id=prediction.id)
    assert Image.objects.count() == images
    assert again.image_id == third.image_id
    assert PredictionReport.objects.count() == 1


def test_png_and_jpeg_studies_get_no_report(tiny_model, sample_image_bytes, django_capture_on_commit_callbacks):
    image = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).image
    with django_capture_on_commit_callbacks(execute=True):
        prediction = succeed(Prediction.objects.get(image=image))
    assert prediction.status == PredictionStatus.SUCCEEDED
    assert prediction_report_store(prediction_id=prediction.id) is None
    assert not PredictionReport.objects.exists()
    assert not Image.objects.filter(modality="SR").exists()


def test_a_batch_of_results_looks_for_reports_in_one_query_and_stores_only_dicom_ones(
    tiny_model, chest_radiograph, sample_image_bytes, django_capture_on_commit_callbacks, django_assert_num_queries
):
    study = StudyFactory()
    pictures = [
        image_upload(study=study, data=sample_image_bytes("cxr-normal-1.png")).image,
        image_upload(study=study, data=sample_image_bytes("cxr-normal-2.png")).image,
    ]
    dicom = _dicom_prediction(chest_radiograph)
    with django_capture_on_commit_callbacks(execute=False):
        succeed(dicom)  # the claim takes the whole batch
    batch = [Prediction.objects.get(image=image) for image in pictures] + [dicom]
    assert {p.status for p in batch} == {PredictionStatus.SUCCEEDED}
    with django_assert_num_queries(1):
        assert reports.prediction_reports_store(prediction_ids=[p.id for p in batch[:2]]) == []
    [record] = reports.prediction_reports_store(prediction_ids=[p.id for p in batch])
    assert record.prediction_id == dicom.id and record.image is not None


def test_a_report_that_cannot_be_stored_leaves_the_prediction_and_records_why(
    tiny_model, chest_radiograph, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    def refused(**kwargs):
        raise OSError("storage is full")

    monkeypatch.setattr(reports, "files_intake", refused)
    prediction = _dicom_prediction(chest_radiograph)
    with django_capture_on_commit_callbacks(execute=True):
        prediction = succeed(prediction)

    assert Prediction.objects.get(id=prediction.id).status == PredictionStatus.SUCCEEDED
    [record] = PredictionReport.objects.all()
    assert record.image is None and record.error == "storage is full"
    assert "Could not store report 1" in caplog.text
    # A later attempt stores it and clears the reason.
    monkeypatch.undo()
    record = prediction_report_store(prediction_id=prediction.id)
    assert record.image is not None and record.error == ""


def test_the_worker_stores_the_report_after_writing_the_result(
    tiny_model, chest_radiograph, django_capture_on_commit_callbacks
):
    prediction = _dicom_prediction(chest_radiograph)
    with django_capture_on_commit_callbacks(execute=True):
        assert runtime.run_batch(prediction_id=prediction.id) == 1
    prediction.refresh_from_db()
    [record] = PredictionReport.objects.filter(prediction=prediction)
    [report] = _reports(prediction)
    assert _items(report)["Finding"].TextValue == prediction.label
    assert record.image.study_id == prediction.image.study_id


def test_an_administrator_stores_a_report_that_failed_and_sees_it_on_the_result(
    client, admin_user, tiny_model, chest_radiograph, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(reports, "files_intake", lambda **kwargs: 1 / 0)
    prediction = _dicom_prediction(chest_radiograph)
    with django_capture_on_commit_callbacks(execute=True):
        prediction = succeed(prediction)
    monkeypatch.undo()
    client.force_login(admin_user)
    page = client.get(f"/admin/inference/prediction/{prediction.id}/change/").content.decode()
    assert "division by zero" in page

    client.post("/admin/inference/prediction/", {"action": "store_reports", "_selected_action": [str(prediction.id)]})
    [record] = PredictionReport.objects.all()
    assert record.image is not None and record.error == ""
    page = client.get(f"/admin/inference/prediction/{prediction.id}/change/").content.decode()
    assert record.sop_instance_uid in page and "division by zero" not in page


def test_a_declined_image_stores_its_refusal_into_the_study_once(
    tiny_model, chest_radiograph, django_capture_on_commit_callbacks
):
    prediction = _dicom_prediction(chest_radiograph)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        prediction = decline(prediction)
    assert len(callbacks) == 1
    assert prediction.not_run

    [record] = PredictionReport.objects.all()
    assert (record.revision, record.error) == (1, "")
    assert record.image.study_id == prediction.image.study_id and record.image.modality == "SR"
    [report] = _reports(prediction)
    assert report.SOPInstanceUID == record.sop_instance_uid and report.CompletionFlag == "COMPLETE"
    items = _items(report)
    assert items[NOT_RUN_MEANING].TextValue == DECLINED
    assert "Finding" not in items and "Class probabilities" not in items
    downloaded = pydicom.dcmread(io.BytesIO(prediction_sr_bytes(prediction=prediction)))
    assert downloaded.SOPInstanceUID == report.SOPInstanceUID

    images = Image.objects.count()
    assert prediction_report_store(prediction_id=prediction.id).image_id == record.image_id
    assert reports.prediction_reports_store(prediction_ids=[prediction.id])[0].image_id == record.image_id
    assert Image.objects.count() == images and PredictionReport.objects.count() == 1
    assert Prediction.objects.count() == 1  # the report is never analysed


def test_an_image_too_small_for_the_model_stores_its_refusal_after_the_intake_commits(
    tiny_model, chest_radiograph, django_capture_on_commit_callbacks
):
    AIModel.objects.filter(id=tiny_model.id).update(input_width=4096, input_height=4096)
    with django_capture_on_commit_callbacks(execute=True):
        prediction = _dicom_prediction(chest_radiograph)
    assert prediction.not_run and "smaller than the 4096×4096" in prediction.error
    [record] = PredictionReport.objects.filter(prediction=prediction)
    [report] = _reports(prediction)
    assert _items(report)[NOT_RUN_MEANING].TextValue == prediction.error
    assert record.image.study_id == prediction.image.study_id
    assert Prediction.objects.count() == 1


def test_a_genuine_failure_stores_no_report(tiny_model, chest_radiograph, django_capture_on_commit_callbacks):
    prediction = _dicom_prediction(chest_radiograph)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        prediction = decline(prediction, reason="The image file is missing from storage.")
    assert prediction.status == PredictionStatus.FAILED and not prediction.not_run
    assert callbacks == []
    assert prediction_report_store(prediction_id=prediction.id) is None
    assert reports.prediction_reports_store(prediction_ids=[prediction.id]) == []
    assert not PredictionReport.objects.exists() and not Image.objects.filter(modality="SR").exists()


def test_a_declined_image_read_after_all_stores_the_result_beside_the_refusal(
    tiny_model, chest_radiograph, django_capture_on_commit_callbacks
):
    prediction = _dicom_prediction(chest_radiograph)
    with django_capture_on_commit_callbacks(execute=True):
        prediction = decline(prediction)
    [refusal] = _reports(prediction)
    with django_capture_on_commit_callbacks(execute=True):
        predictions_rerun(images=[prediction.image])
    with django_capture_on_commit_callbacks(execute=True):
        prediction = succeed(prediction)

    [record] = PredictionReport.objects.filter(prediction=prediction)
    result = pydicom.dcmread(record.image.file.open("rb"))
    assert result.SOPInstanceUID != refusal.SOPInstanceUID
    assert result.SeriesInstanceUID == refusal.SeriesInstanceUID and result.InstanceNumber == 2
    assert _items(result)["Finding"].TextValue == prediction.label
    assert Image.objects.filter(study=prediction.image.study, modality="SR").count() == 2
