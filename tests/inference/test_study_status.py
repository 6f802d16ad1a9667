"""A study's status, derived from its predictions and reviews."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imaging.intake import image_upload
from imaging.models import Study, StudyStatus
from inference.models import ReviewDecision
from inference.services import review_create
from inference.study_status import studies_refresh_after_batch, studies_refresh_status
from tests.factories import StudyFactory
from tests.support.predictions import succeed

pytestmark = pytest.mark.django_db


class TestRefresh:
    def test_only_studies_whose_ai_work_settled_are_refreshed(self, tiny_model, sample_image_bytes):
        done, busy = StudyFactory(), StudyFactory()
        image_upload(study=done, data=sample_image_bytes("cxr-normal-1.png"))
        image_upload(study=busy, data=sample_image_bytes("cxr-normal-1.png"))
        image_upload(study=busy, data=sample_image_bytes("cxr-normal-2.png"))
        succeed(done.images.get().predictions.get())
        succeed(busy.images.first().predictions.get())

        assert studies_refresh_after_batch(study_ids=[done.id, busy.id]) == 1

        done.refresh_from_db()
        busy.refresh_from_db()
        assert done.status == StudyStatus.AI_DONE and busy.status == StudyStatus.AI_PENDING

    def test_statuses_of_many_studies_are_derived_together(self, tiny_model, sample_image_bytes, radiologist_user):
        received, pending, done, reviewed = (StudyFactory() for _ in range(4))
        image_upload(study=pending, data=sample_image_bytes("cxr-normal-1.png"))
        for study in (done, reviewed):
            image_upload(study=study, data=sample_image_bytes("cxr-normal-2.png"))
        succeed(done.images.get().predictions.get())
        review_create(
            prediction=succeed(reviewed.images.get().predictions.get()),
            reviewer=radiologist_user,
            decision=ReviewDecision.AGREE,
        )
        studies = [received, pending, done, reviewed]
        # Left stale on purpose: the refresh must derive every status from the predictions.
        Study.objects.filter(id__in=[s.id for s in studies]).update(status=StudyStatus.AI_PENDING)

        with CaptureQueriesContext(connection) as queries:
            statuses = studies_refresh_status(study_ids=[s.id for s in studies])

        expected = [StudyStatus.RECEIVED, StudyStatus.AI_PENDING, StudyStatus.AI_DONE, StudyStatus.REVIEWED]
        assert [statuses[s.id] for s in studies] == expected
        assert [Study.objects.get(id=s.id).status for s in studies] == expected
        assert Study.objects.get(id=done.id).ai_completed_at is not None
        # Lock, count, one UPDATE per new status (three here) and one for the AI flags, however many studies.
        assert len([q for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]) <= 6
