import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext

import imaging.services
from imaging.models import Image, StudyStatus
from imaging.services import image_check, images_store, study_create
from inference.models import Prediction, PredictionStatus
from tests.factories import PatientFactory, StudyFactory
from tests.support.images import png_bytes

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
