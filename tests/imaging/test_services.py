import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.test import override_settings
from PIL import Image as PILImage

from imaging.models import Image, StudyStatus
from imaging.services import image_check, image_upload, images_store, study_create
from imaging.validation import ImageRejected
from inference.models import Prediction, PredictionStatus
from tests.factories import PatientFactory, StudyFactory
from tests.support.images import png_bytes, png_claiming_size, stored_files, truncated_png

pytestmark = pytest.mark.django_db


class TestStudyCreate:
    def test_creates_a_received_study(self):
        patient = PatientFactory()
        study = study_create(patient=patient, accession_number=" A1 ", modality="DX", body_part="CHEST")
        assert study.accession_number == "A1"
        assert study.status == StudyStatus.RECEIVED

    def test_unknown_modality_is_refused_clearly(self):
        with pytest.raises(ValidationError) as error:
            study_create(patient=PatientFactory(), accession_number="A2", modality="XYZ", body_part="CHEST")
        assert "modality" in error.value.message_dict

    def test_duplicate_accession_number_is_refused(self):
        study_create(patient=PatientFactory(), accession_number="A3", modality="DX", body_part="CHEST")
        with pytest.raises(ValidationError):
            study_create(patient=PatientFactory(), accession_number="A3", modality="DX", body_part="CHEST")


class TestImageUpload:
    def test_stores_content_addressed_and_queues_one_prediction_per_model(
        self, tiny_model, sample_image_bytes, django_capture_on_commit_callbacks
    ):
        study = StudyFactory()
        data = sample_image_bytes("cxr-pneumonia-1.png")
        with django_capture_on_commit_callbacks() as callbacks:
            result = image_upload(study=study, data=data, filename="../../etc/passwd/x-ray.png")
        image = result.image
        assert result.created
        assert image.file.name.startswith("images/") and image.sha256 in image.file.name
        assert image.original_filename == "x-ray.png"  # the client's path never reaches storage
        assert (image.width, image.height, image.content_type) == (28, 28, "image/png")
        assert default_storage.open(image.file.name).read() == data
        prediction = Prediction.objects.get(image=image)
        assert prediction.model == tiny_model and prediction.status == PredictionStatus.QUEUED
        study.refresh_from_db()
        assert study.status == StudyStatus.AI_PENDING
        assert len(callbacks) == 1  # the task is sent only once the transaction commits

    def test_same_bytes_twice_in_one_study_is_one_image(self, tiny_model, sample_image_bytes):
        study = StudyFactory()
        data = sample_image_bytes("cxr-normal-1.png")
        first = image_upload(study=study, data=data)
        second = image_upload(study=study, data=data)
        assert not second.created and second.image.id == first.image.id
        assert Image.objects.count() == 1 and Prediction.objects.count() == 1

    def test_same_bytes_in_two_studies_share_one_file(self, sample_image_bytes):
        data = sample_image_bytes("cxr-normal-1.png")
        first = image_upload(study=StudyFactory(), data=data).image
        second = image_upload(study=StudyFactory(), data=data).image
        assert first.id != second.id and first.file.name == second.file.name

    def test_no_model_for_the_study_leaves_it_received(self, tiny_model, sample_image_bytes):
        study = StudyFactory(modality="US", body_part="BREAST")
        image_upload(study=study, data=sample_image_bytes("us-breast-benign-1.png"))
        study.refresh_from_db()
        assert study.status == StudyStatus.RECEIVED
        assert not Prediction.objects.exists()

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (truncated_png(), "corrupt or truncated"),
            (png_bytes()[:16], "corrupt or truncated"),
            (b"%PDF-1.4 definitely not an image", "not a PNG or JPEG"),
            (b"", "empty"),
            (png_claiming_size(60_000, 60_000), "too many pixels"),
        ],
        ids=["truncated", "truncated-header", "not-an-image", "empty", "decompression-bomb"],
    )
    def test_rejected_input_leaves_no_rows_and_no_files(self, tiny_model, data, message):
        study = StudyFactory()
        before = stored_files()
        with pytest.raises(ImageRejected) as error:
            image_upload(study=study, data=data, filename="bad.png")
        assert message in str(error.value)
        assert not Image.objects.exists() and not Prediction.objects.exists()
        assert stored_files() == before

    @override_settings(MEDPORTAL_MAX_IMAGE_PIXELS=100)
    def test_pixel_limit(self, tiny_model):
        with pytest.raises(ImageRejected, match="the limit is 100 pixels"):
            image_upload(study=StudyFactory(), data=png_bytes(11, 10))
        assert not Image.objects.exists()

    @override_settings(MEDPORTAL_MAX_UPLOAD_BYTES=100)
    def test_byte_limit(self, tiny_model, sample_image_bytes):
        with pytest.raises(ImageRejected, match="the limit is 100 bytes"):
            image_upload(study=StudyFactory(), data=sample_image_bytes("smear-neutrophil-1.jpg"))
        assert not Image.objects.exists()

    def test_gif_is_refused(self):
        buffer = io.BytesIO()
        PILImage.new("L", (8, 8)).save(buffer, format="GIF")
        with pytest.raises(ImageRejected, match="GIF images are not accepted"):
            image_upload(study=StudyFactory(), data=buffer.getvalue())

    def test_failure_after_storing_removes_the_new_file(self, tiny_model, sample_image_bytes, monkeypatch):
        import inference.services

        def explode(**kwargs):
            raise RuntimeError("routing broke")

        monkeypatch.setattr(inference.services, "predictions_create_for_images", explode)
        before = stored_files()
        with pytest.raises(RuntimeError):
            image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-2.png"))
        assert stored_files() == before
        assert not Image.objects.exists()


class TestImagesStore:
    """Several images of one study stored together, as a modality sends a series."""

    def test_a_series_is_stored_in_order_with_one_second_opinion_each(
        self, tiny_model, django_capture_on_commit_callbacks
    ):
        study = StudyFactory()
        files = [image_check(data=png_bytes(color=shade), filename=f"slice-{shade}.png") for shade in range(5)]
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            results = images_store(study=study, images=files)
        assert [r.image.original_filename for r in results] == [f"slice-{shade}.png" for shade in range(5)]
        assert all(r.created for r in results)
        assert Prediction.objects.filter(status=PredictionStatus.QUEUED, enqueued_at__isnull=False).count() == 5
        assert len(callbacks) == 1  # one send for the series, after the commit
        study.refresh_from_db()
        assert study.status == StudyStatus.AI_PENDING

    def test_statements_do_not_grow_with_the_number_of_images(self, tiny_model):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        def statements(count: int, offset: int) -> int:
            files = [image_check(data=png_bytes(color=offset + n)) for n in range(count)]
            with CaptureQueriesContext(connection) as queries:
                images_store(study=StudyFactory(), images=files)
            return len(queries)

        assert statements(8, offset=100) == statements(1, offset=0)

    def test_a_file_repeated_in_one_series_is_one_image(self, tiny_model):
        study = StudyFactory()
        same = image_check(data=png_bytes(color=7), filename="a.png")
        first, again = images_store(study=study, images=[same, same])
        assert first.created and not again.created and again.image.id == first.image.id
        assert Image.objects.count() == 1 and Prediction.objects.count() == 1

    def test_a_concurrent_upload_of_the_same_bytes_wins_and_is_returned(self, tiny_model, monkeypatch):
        import imaging.services

        study = StudyFactory()
        data = png_bytes(color=9)
        real_store = imaging.services.blob_store

        def store_while_another_request_commits(**kwargs):
            blob = real_store(**kwargs)
            # The other request's row lands between this request's lookup and its insert.
            Image.objects.create(
                study=study, file=blob.name, sha256=image_check(data=data).sha256, size_bytes=len(data),
                content_type="image/png", width=16, height=16,
            )  # fmt: skip
            monkeypatch.setattr(imaging.services, "blob_store", real_store)
            return blob

        monkeypatch.setattr(imaging.services, "blob_store", store_while_another_request_commits)
        [result] = images_store(study=study, images=[image_check(data=data)])
        assert not result.created
        assert Image.objects.count() == 1
        assert default_storage.exists(result.image.file.name)  # the winner's file is kept
