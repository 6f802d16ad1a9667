"""The migration that adds the DICOM query keys (Modality per instance, StudyTime, StudyID) fills them
for instances stored before it, from their headers."""

import datetime
import importlib

import pydicom
import pytest
from django.apps import apps

from imaging.intake import IncomingFile, files_intake
from imaging.models import Image, ImageSource, Study
from tests.dicom.support import shipped_bytes, shipped_path

pytestmark = pytest.mark.django_db


def test_the_migration_fills_the_query_keys_of_instances_stored_before_it(staff_user):
    migration = importlib.import_module("imaging.migrations.0008_dicom_query_keys")
    ct = pydicom.dcmread(shipped_path("CT_small.dcm"))
    [intake] = files_intake(
        files=[IncomingFile.from_bytes(shipped_bytes("CT_small.dcm"))],
        source=ImageSource.STOW_RS,
        uploaded_by=staff_user,
    )
    image = intake.image
    Image.objects.filter(pk=image.pk).update(modality="")
    Study.objects.filter(pk=image.study_id).update(study_time=None, dicom_study_id="")

    migration.backfill(apps, None)

    image.refresh_from_db()
    image.study.refresh_from_db()
    assert image.modality == "CT"
    assert image.study.study_time == datetime.time(7, 27, 30)
    assert image.study.dicom_study_id == ct.StudyID
