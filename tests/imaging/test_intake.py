"""The one way in for a file: type by content, the same rules everywhere, and how a batch commits."""

import io

import pytest
from django.core.files.storage import default_storage
from django.test import override_settings
from PIL import Image as PILImage

from imaging.intake import Batch, IncomingFile, IntakeRejected, files_intake, image_upload
from imaging.models import Image, ImageSource, StudyStatus
from imaging.signals import images_stored
from imaging.validation import ImageRejected
from inference.models import Prediction, PredictionStatus
from tests.dicom.support import shipped_bytes
from tests.factories import StudyFactory
from tests.support.images import png_bytes, png_claiming_size, stored_files, truncated_png

pytestmark = pytest.mark.django_db


@pytest.fixture
def failing_followup():
    """An after-store handler that breaks, as a routing bug in the AI app would."""

    def explode(**kwargs):
        raise RuntimeError("routing broke")

    images_stored.connect(explode, dispatch_uid="test-explode")
    yield
    images_stored.disconnect(dispatch_uid="test-explode")


def files(*items: tuple[str, bytes]) -> list[IncomingFile]:
    return [IncomingFile.from_bytes(data, name) for name, data in items]


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

    def test_failure_after_storing_removes_the_new_file(self, tiny_model, sample_image_bytes, failing_followup):
        before = stored_files()
        with pytest.raises(RuntimeError):
            image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-2.png"))
        assert stored_files() == before
        assert not Image.objects.exists()


class TestEachFile:
    def test_each_dicom_file_is_stored_or_rejected_on_its_own(self):
        intakes = files_intake(
            files=files(
                ("ct.dcm", shipped_bytes("CT_small.dcm")),
                ("broken.dcm", shipped_bytes("MR_truncated.dcm")),
                ("rgb.dcm", shipped_bytes("examples_rgb_color.dcm")),
            ),
            source=ImageSource.UPLOAD,
        )
        assert [i.stored for i in intakes] == [True, False, True]
        assert "truncated" in intakes[1].error and not intakes[1].fault
        assert Image.objects.count() == 2

    def test_without_a_study_a_picture_is_refused_for_want_of_tags(self, sample_image_bytes):
        [intake] = files_intake(files=files(("x.png", sample_image_bytes("cxr-normal-1.png"))), source="upload")
        assert not intake.stored and "only DICOM files can be filed without a study" in intake.error
        assert not Image.objects.exists()

    def test_a_broken_handler_is_our_fault_not_the_files(
        self, tiny_model, sample_image_bytes, chest_radiograph, failing_followup
    ):
        study = StudyFactory()
        before = stored_files()
        intakes = files_intake(
            files=files(
                ("a.png", sample_image_bytes("cxr-normal-1.png")),
                ("b.dcm", chest_radiograph(patient=study.patient)),
            ),
            source=ImageSource.UPLOAD,
            study=study,
        )
        # The handler runs for every stored image, DICOM too; neither file is blamed.
        assert all(i.fault and not i.stored for i in intakes)
        assert not Image.objects.exists() and stored_files() == before


class TestAllOrNothing:
    def test_a_rejected_file_stores_nothing_and_names_itself(self, tiny_model, sample_image_bytes):
        before = stored_files()
        with pytest.raises(IntakeRejected) as error:
            files_intake(
                files=files(("good.png", sample_image_bytes("cxr-normal-1.png")), ("dir/bad.png", truncated_png())),
                source=ImageSource.UPLOAD,
                study=StudyFactory(),
                batch=Batch.ALL_OR_NOTHING,
            )
        assert error.value.filename == "bad.png" and "truncated" in str(error.value)
        assert not Image.objects.exists() and stored_files() == before

    def test_a_dicom_file_of_another_patient_undoes_the_files_stored_before_it(
        self, tiny_model, sample_image_bytes, chest_radiograph
    ):
        study = StudyFactory(modality="DX", body_part="CHEST")
        before = stored_files()
        with pytest.raises(IntakeRejected, match="belongs to patient") as error:
            files_intake(
                files=files(
                    ("mine.dcm", chest_radiograph(patient=study.patient)),
                    ("picture.png", sample_image_bytes("cxr-normal-1.png")),
                    ("theirs.dcm", chest_radiograph(patient_id="SOMEONE-ELSE")),
                ),
                source=ImageSource.UPLOAD,
                study=study,
                batch=Batch.ALL_OR_NOTHING,
            )
        assert error.value.filename == "theirs.dcm"
        assert not Image.objects.exists() and not Prediction.objects.exists()
        assert stored_files() == before

    def test_pictures_and_dicom_of_one_study_are_stored_together_in_order(
        self, tiny_model, sample_image_bytes, chest_radiograph
    ):
        study = StudyFactory(modality="DX", body_part="CHEST")
        intakes = files_intake(
            files=files(
                ("a.png", sample_image_bytes("cxr-normal-1.png")),
                ("b.dcm", chest_radiograph(patient=study.patient)),
                ("c.png", sample_image_bytes("cxr-pneumonia-1.png")),
                ("a-again.png", sample_image_bytes("cxr-normal-1.png")),
            ),
            source=ImageSource.UPLOAD,
            study=study,
            batch=Batch.ALL_OR_NOTHING,
        )
        assert [i.filename for i in intakes] == ["a.png", "b.dcm", "c.png", "a-again.png"]
        assert [i.created for i in intakes] == [True, True, True, False]
        assert [i.image.content_type for i in intakes[:3]] == ["image/png", "application/dicom", "image/png"]
        assert all(len(i.followups) == 1 for i in intakes[:3]) and intakes[3].followups is None
        assert Prediction.objects.filter(status=PredictionStatus.QUEUED).count() == 3


@override_settings(MEDPORTAL_MAX_IMAGE_PIXELS=100)
def test_the_pixel_limit_holds_for_dicom_too():
    [intake] = files_intake(files=files(("ct.dcm", shipped_bytes("CT_small.dcm"))), source=ImageSource.C_STORE)
    assert not intake.stored and "the limit is 100 pixels" in intake.error
