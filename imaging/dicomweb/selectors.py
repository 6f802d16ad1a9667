"""The reads behind DICOMweb: studies and instances that came in as DICOM, and QIDO matching."""

import datetime
import io

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from pydicom import Dataset, dcmread

from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.models import Image, Study
from imaging.storage import blob_read


def dicom_studies() -> QuerySet[Study]:
    return Study.objects.filter(study_instance_uid__isnull=False).select_related("patient")


def dicom_study_get(*, study_uid: str) -> Study | None:
    return dicom_studies().filter(study_instance_uid=study_uid).first()


def dicom_instances(*, study: Study, series_uid: str | None = None, instance_uid: str | None = None) -> QuerySet[Image]:
    """A study's DICOM instances; series "-" stands for instances without a series UID."""
    images = study.images.filter(content_type=DICOM_CONTENT_TYPE, sop_instance_uid__isnull=False)
    if series_uid:
        images = images.filter(series_instance_uid="" if series_uid == "-" else series_uid)
    if instance_uid:
        images = images.filter(sop_instance_uid=instance_uid)
    return images.order_by("series_instance_uid", "uploaded_at")


def dicom_series_counts(*, study: Study) -> QuerySet:
    """One row per series of the study: its ``series_instance_uid`` and ``n`` instances."""
    return (
        dicom_instances(study=study)
        .values("series_instance_uid")
        .annotate(n=Count("id"))
        .order_by("series_instance_uid")
    )


def dicom_instance_header(*, image: Image) -> Dataset:
    """The stored instance's attributes without its pixel data."""
    return dcmread(io.BytesIO(blob_read(image.file.name)), force=True, stop_before_pixels=True)


def dicom_study_search(
    *,
    study_uids: list[str],
    patient_id: str,
    patient_name: str,
    accession_number: str,
    study_date: str,
    modalities: list[str],
    description: str,
) -> QuerySet[Study]:
    """QIDO-RS study matching; an empty value matches everything. Annotates the QIDO counts."""
    studies = dicom_studies()
    if study_uids:
        studies = studies.filter(study_instance_uid__in=study_uids)
    if patient_id:
        studies = studies.filter(_wildcard("patient__mrn", patient_id))
    if patient_name:
        family, _, given = patient_name.partition("^")
        if family and family != "*":
            studies = studies.filter(_wildcard("patient__family_name", family))
        if given and given != "*":
            studies = studies.filter(_wildcard("patient__given_name", given))
    if accession_number:
        studies = studies.filter(_wildcard("accession_number", accession_number))
    if study_date:
        studies = studies.filter(_date_range(study_date))
    if modalities:
        studies = studies.filter(modality__in=modalities)
    if description:
        studies = studies.filter(_wildcard("description", description))
    # The counts are subqueries run for the rows of the page, not a join of every image grouped first.
    instances = Image.objects.filter(study=OuterRef("pk"), sop_instance_uid__isnull=False).order_by().values("study")
    return studies.annotate(
        instance_count=Coalesce(Subquery(instances.annotate(n=Count("pk")).values("n")), 0),
        series_count=Coalesce(
            Subquery(instances.annotate(n=Count("series_instance_uid", distinct=True)).values("n")), 0
        ),
    ).order_by("-study_date", "-created_at")


def _wildcard(field: str, value: str) -> Q:
    # QIDO wildcards: '*' any run, '?' one character. Only the common forms are needed here.
    core = value.replace("?", "*")
    if core.startswith("*") and core.endswith("*") and len(core) > 1:
        return Q(**{f"{field}__icontains": core.strip("*")})
    if core.endswith("*"):
        return Q(**{f"{field}__istartswith": core.rstrip("*")})
    if core.startswith("*"):
        return Q(**{f"{field}__iendswith": core.lstrip("*")})
    return Q(**{f"{field}__iexact": core})


def _date_range(value: str) -> Q:
    """A DA value or range (YYYYMMDD, YYYYMMDD-, -YYYYMMDD, YYYYMMDD-YYYYMMDD); unparsable matches nothing."""

    def parse(text: str) -> datetime.date | None:
        text = text.strip()
        return datetime.date(int(text[0:4]), int(text[4:6]), int(text[6:8])) if len(text) >= 8 else None

    try:
        if "-" in value:
            start, end = (parse(side) for side in value.split("-", 1))
            query = Q()
            if start:
                query &= Q(study_date__gte=start)
            if end:
                query &= Q(study_date__lte=end)
            return query
        return Q(study_date=parse(value))
    except ValueError:
        return Q(pk__in=[])
