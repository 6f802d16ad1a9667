"""The demo records: sample images in studies of demo patients, and DICOM studies to open in the viewer."""

import pytest
from django.core.management import call_command

from imaging.models import Study
from web.demo import demo_records_ensure, demo_users_ensure
from web.templatetags.portal import viewer_url

pytestmark = pytest.mark.django_db


def test_the_demo_has_dicom_studies_to_open_in_the_viewer_and_is_made_once(settings):
    settings.MEDPORTAL_DEMO_ALLOWED = True
    demo_users_ensure()
    assert demo_records_ensure() == 6  # four sample images and two DICOM instances
    dicom = Study.objects.filter(study_instance_uid__isnull=False)
    assert sorted(dicom.values_list("modality", flat=True)) == ["CT", "MR"]
    assert all(viewer_url(study).startswith("/viewer/viewer?StudyInstanceUIDs=") for study in dicom)
    assert demo_records_ensure() == 0
    call_command("demo_setup", "--no-records")  # users and models again, nothing else
    assert Study.objects.count() == 6
