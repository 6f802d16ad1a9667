import django_filters
from django.db.models import Q

from api.filters import UtcDateTimeRangeFilter
from imaging.models import BodyPart, Image, Modality, Priority, Study, StudyStatus
from patients.models import Patient


class StudyFilter(django_filters.FilterSet):
    patient = django_filters.UUIDFilter(field_name="patient_id")
    mrn = django_filters.CharFilter(field_name="patient__mrn", lookup_expr="iexact", help_text="Patient's MRN.")
    accession = django_filters.CharFilter(field_name="accession_number", lookup_expr="iexact")
    modality = django_filters.MultipleChoiceFilter(choices=Modality.choices, distinct=False)
    body_part = django_filters.MultipleChoiceFilter(choices=BodyPart.choices, distinct=False)
    status = django_filters.MultipleChoiceFilter(choices=StudyStatus.choices, distinct=False)
    priority = django_filters.TypedMultipleChoiceFilter(choices=Priority.choices, coerce=int, distinct=False)
    study_date = django_filters.DateFromToRangeFilter(help_text="study_date_after / study_date_before, inclusive.")
    created = UtcDateTimeRangeFilter(field_name="created_at", help_text="created_after / created_before (ISO 8601).")
    search = django_filters.CharFilter(method="filter_search", help_text="Accession number, MRN or description.")
    ordering = django_filters.OrderingFilter(
        fields=(("created_at", "created"), ("study_date", "study_date"), ("priority", "priority"), ("status", "status"))
    )

    class Meta:
        model = Study
        fields = ("patient",)

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        # The MRN as a subquery (one patient, through its UPPER(mrn) index), not a join: an OR across
        # the join made PostgreSQL merge-join every study with its patient (74 ms of SQL for "brain").
        patient = Patient.objects.filter(mrn__iexact=value).values("pk")
        return queryset.filter(
            Q(accession_number__iexact=value) | Q(patient__in=patient) | Q(description__icontains=value)
        )


class ImageFilter(django_filters.FilterSet):
    study = django_filters.UUIDFilter(field_name="study_id")
    patient = django_filters.UUIDFilter(field_name="study__patient_id")
    mrn = django_filters.CharFilter(field_name="study__patient__mrn", lookup_expr="iexact")
    accession = django_filters.CharFilter(field_name="study__accession_number", lookup_expr="iexact")
    modality = django_filters.MultipleChoiceFilter(
        field_name="study__modality", choices=Modality.choices, distinct=False
    )
    content_type = django_filters.ChoiceFilter(choices=[("image/png", "PNG"), ("image/jpeg", "JPEG")])
    uploaded = UtcDateTimeRangeFilter(
        field_name="uploaded_at", help_text="uploaded_after / uploaded_before (ISO 8601)."
    )
    ordering = django_filters.OrderingFilter(fields=(("uploaded_at", "uploaded"), ("size_bytes", "size")))

    class Meta:
        model = Image
        fields = ("study",)
