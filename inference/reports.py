"""AI second opinions stored into their DICOM studies as Structured Reports, so that a viewer or
a PACS reading the study sees them beside the images.

Each revision (the AI's result, then every saved or amended review) becomes a new instance of
the model's report series, stored through the one intake path once the change has committed.
The SOP Instance UID of a revision is derived from the prediction and the revision number, so a
retried task or a second call stores nothing twice. A report that cannot be stored never undoes
the result or the review: the reason is logged and kept on ``PredictionReport``.

A model that declined the image (``Prediction.not_run``) gave no result, but its refusal is
stored the same way, as revision 1: a viewer of the study sees that the AI did not read the image
and why, rather than nothing. Other failures have no report.
"""

import logging
import uuid
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Q

from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.intake import IncomingFile, files_intake
from imaging.models import Image, ImageSource
from inference.dicom_report import (
    has_report,
    prediction_sr_bytes,
    report_instance_uid,
    report_revision,
    report_series_uid,
)
from inference.models import NOT_RUN_PREFIX, Prediction, PredictionReport, PredictionStatus

logger = logging.getLogger(__name__)


def prediction_reports_store_on_commit(*, prediction_ids: Iterable[uuid.UUID | str]) -> None:
    """Store the current report of these predictions once the current transaction commits.

    Never before: a report must not describe a result or a review that was rolled back.
    """
    ids = [str(value) for value in prediction_ids]
    if ids:
        transaction.on_commit(lambda: prediction_reports_store(prediction_ids=ids))


def prediction_reports_store(*, prediction_ids: Iterable[uuid.UUID | str]) -> list[PredictionReport]:
    """Store the current revision of each prediction's report; returns the records made or found."""
    # A worker's batch of PNG or JPEG results has no report to store: one query finds the few
    # that may have one, instead of one query per prediction.
    ids = [str(value) for value in prediction_ids]
    reportable = {
        str(value)
        for value in Prediction.objects.filter(
            Q(status=PredictionStatus.SUCCEEDED) | Q(status=PredictionStatus.FAILED, error__startswith=NOT_RUN_PREFIX),
            id__in=ids,
            image__content_type=DICOM_CONTENT_TYPE,
            image__study__study_instance_uid__isnull=False,
        ).values_list("id", flat=True)
    }
    records = []
    for prediction_id in [value for value in ids if value in reportable]:
        record = prediction_report_store(prediction_id=prediction_id)
        if record is not None:
            records.append(record)
    return records


def prediction_report_store(*, prediction_id: uuid.UUID | str) -> PredictionReport | None:
    """Store the current revision of one prediction's report into its study. Safe to call again.

    Returns None when there is nothing to store: the prediction has neither succeeded nor been
    declined by the model (``Prediction.not_run``), or its image
    is not a DICOM instance of a DICOM study (a PNG or JPEG has no study a viewer could show).
    A failure is logged and recorded on the returned record, never raised.
    """
    prediction = Prediction.objects.select_related("model", "image__study__patient").filter(id=prediction_id).first()
    if prediction is None or not has_report(prediction):
        return None
    image, study = prediction.image, prediction.image.study
    if image.content_type != DICOM_CONTENT_TYPE or not study.study_instance_uid:
        return None
    revision = report_revision(prediction)
    uid = report_instance_uid(prediction, revision)
    # By UID too: an image declined and then read after all has its result stored as revision 1 beside the refusal.
    done = PredictionReport.objects.filter(
        prediction=prediction, revision=revision, sop_instance_uid=uid, image__isnull=False
    ).first()
    if done is not None:
        return done
    try:
        stored = Image.objects.filter(study=study, sop_instance_uid=uid).first()
        if stored is None:
            stored = _store(prediction, revision=revision)
        return _record(prediction, revision=revision, uid=uid, image=stored, error="")
    except Exception as exc:  # whatever went wrong, the second opinion and its review stand
        logger.warning("Could not store report %s of prediction %s", revision, prediction.id, exc_info=True)
        return _record(prediction, revision=revision, uid=uid, image=None, error=str(exc) or type(exc).__name__)


class ReportNotStored(RuntimeError):
    """The intake refused the report."""


def _store(prediction: Prediction, *, revision: int) -> Image:
    study = prediction.image.study
    series = report_series_uid(study.study_instance_uid, prediction.model)
    # Revisions are numbered in the order they were stored, across the reports of the series.
    number = Image.objects.filter(study=study, series_instance_uid=series).count() + 1
    data = prediction_sr_bytes(prediction=prediction, revision=revision, instance_number=number)
    [intake] = files_intake(
        files=[IncomingFile.from_bytes(data, f"ai-report-{prediction.id}-{revision}.dcm")],
        source=ImageSource.UPLOAD,
        study=study,
    )
    if not intake.stored:
        raise ReportNotStored(intake.error or "The report was refused.")
    return intake.image


def _record(
    prediction: Prediction, *, revision: int, uid: str, image: Image | None, error: str
) -> PredictionReport | None:
    try:
        with transaction.atomic():
            record, _ = PredictionReport.objects.update_or_create(
                prediction=prediction,
                revision=revision,
                defaults={"sop_instance_uid": uid, "image": image, "error": error[:4000]},
            )
    except IntegrityError:
        # Another process recorded this revision at the same moment; its record stands.
        return PredictionReport.objects.filter(prediction=prediction, revision=revision).first()
    return record
