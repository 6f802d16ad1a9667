"""The reads behind DICOMweb and the DIMSE Query/Retrieve SCP: DICOM patients, studies, series and
instances, and the matching rules both apply (wildcards, date ranges, UID lists)."""

import datetime
import re

from django.core.files.storage import default_storage
from django.db.models import Aggregate, CharField, Count, Exists, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.db.models.lookups import IsNull
from pydicom import Dataset, dcmread

from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.dicom.parsing import dicom_time
from imaging.models import Image, Study
from patients.models import Patient


def dicom_studies() -> QuerySet[Study]:
    return Study.objects.filter(study_instance_uid__isnull=False).select_related("patient")


def dicom_study_get(*, study_uid: str) -> Study | None:
    return dicom_studies().filter(study_instance_uid=study_uid).first()


def dicom_instances(*, study, series_uid: str | None = None, instance_uid: str | None = None) -> QuerySet[Image]:
    """A study's DICOM instances (``study``: a Study or its key); series "-" stands for those without a series UID."""
    images = Image.objects.filter(study=study, content_type=DICOM_CONTENT_TYPE, sop_instance_uid__isnull=False)
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
    """The stored instance's attributes without its pixel data (the pixels are not even read)."""
    with default_storage.open(image.file.name, "rb") as handle:
        return dcmread(handle, force=True, stop_before_pixels=True)


def dicom_study_search(
    *,
    study_uids: list[str] = (),
    patient_id: str = "",
    patient_name: str = "",
    accession_number: str = "",
    study_date: str = "",
    study_time: str = "",
    study_id: str = "",
    modalities: list[str] = (),
    description: str = "",
    fuzzy_names: bool = False,
) -> QuerySet[Study]:
    """QIDO-RS and C-FIND study matching; an empty value matches everything. Annotates the counts and
    the modalities of the instances (``modalities_in_study``)."""
    studies = dicom_studies().filter(
        _patient_match("patient__", patient_id=patient_id, patient_name=patient_name, fuzzy=fuzzy_names)
    )
    if study_uids:
        studies = studies.filter(study_instance_uid__in=study_uids)
    if accession_number:
        studies = studies.filter(_wildcard("dicom_accession_number", accession_number))
    if study_date:
        studies = studies.filter(_date_range("study_date", study_date))
    if study_time:
        studies = studies.filter(_time_range("study_time", study_time))
    if study_id:
        studies = studies.filter(_wildcard("dicom_study_id", study_id))
    if modalities:
        studies = studies.filter(_modalities_match(modalities))
    if description:
        studies = studies.filter(_wildcard("description", description))
    # The counts and the modalities are subqueries run for the rows of the page, not a join of every
    # image grouped first.
    instances = Image.objects.filter(study=OuterRef("pk"), sop_instance_uid__isnull=False).order_by().values("study")
    return studies.annotate(
        instance_count=Coalesce(Subquery(instances.annotate(n=Count("pk")).values("n")), 0),
        series_count=Coalesce(
            Subquery(instances.annotate(n=Count("series_instance_uid", distinct=True)).values("n")), 0
        ),
        instance_modalities=Subquery(
            instances.exclude(modality="").annotate(modalities=_DistinctModalities("modality")).values("modalities")
        ),
    ).order_by("-study_date", "-created_at")


def dicom_patient_search(*, patient_id: str = "", patient_name: str = "", birth_date: str = "") -> QuerySet[Patient]:
    """Patients with at least one DICOM study, matched like ``dicom_study_search``. Annotates their counts."""
    patients = Patient.objects.filter(Exists(dicom_studies().filter(patient=OuterRef("pk")))).filter(
        _patient_match("", patient_id=patient_id, patient_name=patient_name)
    )
    if birth_date:
        patients = patients.filter(_date_range("birth_date", birth_date))
    studies = dicom_studies().filter(patient=OuterRef("pk")).order_by().values("patient")
    instances = (
        Image.objects.filter(
            study__patient=OuterRef("pk"), study__study_instance_uid__isnull=False, sop_instance_uid__isnull=False
        )
        .order_by()
        .values("study__patient")
    )
    return patients.annotate(
        study_count=Coalesce(Subquery(studies.annotate(n=Count("pk")).values("n")), 0),
        series_count=Coalesce(
            Subquery(instances.annotate(n=Count("series_instance_uid", distinct=True)).values("n")), 0
        ),
        instance_count=Coalesce(Subquery(instances.annotate(n=Count("pk")).values("n")), 0),
    ).order_by("family_name", "given_name", "mrn")


def dicom_instance_search(
    *,
    studies: QuerySet[Study],
    series_uids: list[str] = (),
    instance_uids: list[str] = (),
    sop_classes: list[str] = (),
    modalities: list[str] = (),
) -> QuerySet[Image]:
    """The DICOM instances of ``studies``, optionally only of these series, instances, SOP classes or modalities."""
    images = Image.objects.filter(
        study__in=studies.values("pk"), content_type=DICOM_CONTENT_TYPE, sop_instance_uid__isnull=False
    )
    if series_uids:
        images = images.filter(series_instance_uid__in=series_uids)
    if instance_uids:
        images = images.filter(sop_instance_uid__in=instance_uids)
    if sop_classes:
        images = images.filter(sop_class_uid__in=sop_classes)
    if modalities:
        images = images.filter(modality__in=modalities)
    return images.select_related("study__patient").order_by("study_id", "series_instance_uid", "uploaded_at")


def _modalities_match(modalities: list[str]) -> Q:
    """ModalitiesInStudy: a study with an instance of any of these modalities.

    A study whose instances predate the per-instance modality falls back to the modality it was filed as.

    The instance is looked for with a scalar subquery (one instance or none) rather than ``EXISTS``:
    under this ``OR`` PostgreSQL made the ``EXISTS`` a hash of every DICOM instance of the modality,
    built before the first study was read (200,000 instances for MR at ten times the seeded
    history), whereas a scalar subquery is one probe of ``image_dicom_modality_study`` per study as
    the studies are read in the list's order, until the page is full. A modality no instance has
    is found out once, beforehand, instead of by a probe per study.
    """
    instances = Image.objects.filter(study=OuterRef("pk"), sop_instance_uid__isnull=False).order_by()
    any_of_them = Exists(Image.objects.filter(sop_instance_uid__isnull=False, modality__in=modalities))
    one_of_them = Subquery(instances.filter(modality__in=modalities).values("study")[:1])
    one_with_a_modality = Subquery(instances.exclude(modality="").values("study")[:1])
    return (Q(any_of_them) & Q(IsNull(one_of_them, False))) | (
        Q(modality__in=modalities) & Q(IsNull(one_with_a_modality, True))
    )


class _DistinctModalities(Aggregate):
    """The distinct values as one comma-separated text, in no particular order (``modalities_in_study``)."""

    function = "STRING_AGG"
    template = "%(function)s(DISTINCT %(expressions)s, ',')"
    output_field = CharField()

    def as_sqlite(self, compiler, connection, **extra_context):
        template = "%(function)s(DISTINCT %(expressions)s)"  # separated by commas
        return self.as_sql(compiler, connection, function="GROUP_CONCAT", template=template, **extra_context)

    as_mysql = as_sqlite


def modalities_in_study(instance_modalities: str | None) -> list[str]:
    """A study's ModalitiesInStudy from ``dicom_study_search``'s ``instance_modalities``: the distinct
    modalities of its instances, sorted (CS values hold no comma). Empty when no instance carries one."""
    return sorted(set(instance_modalities.split(","))) if instance_modalities else []


def dicom_series_search(
    *, studies: QuerySet[Study], series_uids: list[str] = (), modalities: list[str] = ()
) -> QuerySet:
    """One row per series of ``studies``: ``study_id``, ``series_instance_uid``, ``modality`` and ``n`` instances."""
    images = Image.objects.filter(
        study__in=studies.values("pk"), content_type=DICOM_CONTENT_TYPE, sop_instance_uid__isnull=False
    )
    if series_uids:
        images = images.filter(series_instance_uid__in=series_uids)
    if modalities:
        images = images.filter(modality__in=modalities)
    return (
        images.values("study_id", "series_instance_uid")
        .annotate(n=Count("id"), modality=Max("modality"))
        .order_by("study_id", "series_instance_uid")
    )


def _patient_match(prefix: str, *, patient_id: str, patient_name: str, fuzzy: bool = False) -> Q:
    """PatientID and PatientName (family^given, each with wildcards) on a patient or a related one.

    With ``fuzzy`` (QIDO ``fuzzymatching=true``) each word of the name matches the start of any
    word of the family or given name, in any order and case: "smi jo" finds Smith^John and John^Smith.
    """
    query = Q()
    if patient_id:
        query &= _wildcard(f"{prefix}mrn", patient_id)
    if patient_name and fuzzy:
        for word in patient_name.replace("^", " ").replace("*", " ").replace("?", " ").split():
            query &= (
                Q(**{f"{prefix}family_name__istartswith": word})
                | Q(**{f"{prefix}family_name__icontains": f" {word}"})
                | Q(**{f"{prefix}given_name__istartswith": word})
                | Q(**{f"{prefix}given_name__icontains": f" {word}"})
            )
    elif patient_name:
        family, _, given = patient_name.partition("^")
        given = given.partition("^")[0]
        if family and family != "*":
            query &= _wildcard(f"{prefix}family_name", family)
        if given and given != "*":
            query &= _wildcard(f"{prefix}given_name", given)
    return query


def _wildcard(field: str, value: str) -> Q:
    """DICOM wildcard matching (PS3.4 C.2.2.2.4), case-insensitive: '*' any run, '?' one character."""
    inner = value.strip("*")
    if "*" in inner or "?" in inner:
        pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
        return Q(**{f"{field}__iregex": f"^{pattern}$"})
    # The common forms, as plain LIKE queries the indexes can serve.
    if not inner:
        return Q()
    if value.startswith("*") and value.endswith("*"):
        return Q(**{f"{field}__icontains": inner})
    if value.endswith("*"):
        return Q(**{f"{field}__istartswith": inner})
    if value.startswith("*"):
        return Q(**{f"{field}__iendswith": inner})
    return Q(**{f"{field}__iexact": value})


def _time_range(field: str, value: str) -> Q:
    """A TM value or range (HHMMSS, HHMM-, -HHMMSS, HHMM-HHMMSS); a single value matches to its precision."""
    if "-" not in value:
        start = dicom_time(value)
        if start is None:
            return Q(pk__in=[])
        whole, _, fraction = value.strip().replace(":", "").partition(".")
        # A value matches to its precision: "10" is 10:00 to 10:59:59.999999, "1030" the minute, "103000" the second.
        if len(whole) <= 2:
            end = start.replace(minute=59, second=59, microsecond=999999)
        elif len(whole) <= 4:
            end = start.replace(second=59, microsecond=999999)
        else:
            end = start if fraction else start.replace(microsecond=999999)
        return Q(**{f"{field}__gte": start, f"{field}__lte": end})
    start_text, end_text = value.split("-", 1)
    query = Q()
    if start_text.strip():
        start = dicom_time(start_text)
        if start is None:
            return Q(pk__in=[])
        query &= Q(**{f"{field}__gte": start})
    if end_text.strip():
        end = dicom_time(end_text)
        if end is None:
            return Q(pk__in=[])
        query &= Q(**{f"{field}__lte": end})
    return query


def _date_range(field: str, value: str) -> Q:
    """A DA value or range (YYYYMMDD, YYYYMMDD-, -YYYYMMDD, YYYYMMDD-YYYYMMDD); unparsable matches nothing."""

    def parse(text: str) -> datetime.date | None:
        text = text.strip()
        return datetime.date(int(text[0:4]), int(text[4:6]), int(text[6:8])) if len(text) >= 8 else None

    try:
        if "-" in value:
            start, end = (parse(side) for side in value.split("-", 1))
            query = Q()
            if start:
                query &= Q(**{f"{field}__gte": start})
            if end:
                query &= Q(**{f"{field}__lte": end})
            return query
        return Q(**{field: parse(value)})
    except ValueError:
        return Q(pk__in=[])
