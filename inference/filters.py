import django_filters

from api.filters import UtcDateTimeRangeFilter
from imaging.models import BodyPart, Modality, Priority, StudyStatus
from inference.models import AIModel, AIModelStatus, Prediction, PredictionStatus, Review, ReviewDecision


class PredictionFilter(django_filters.FilterSet):
    study = django_filters.UUIDFilter(field_name="image__study_id")
    image = django_filters.UUIDFilter(field_name="image_id")
    patient = django_filters.UUIDFilter(field_name="image__study__patient_id")
    mrn = django_filters.CharFilter(field_name="image__study__patient__mrn", lookup_expr="iexact")
    accession = django_filters.CharFilter(field_name="image__study__accession_number", lookup_expr="iexact")
    modality = django_filters.MultipleChoiceFilter(
        field_name="study_modality", choices=Modality.choices, distinct=False
    )
    status = django_filters.MultipleChoiceFilter(choices=PredictionStatus.choices, distinct=False)
    model = django_filters.UUIDFilter(field_name="model_id")
    model_name = django_filters.CharFilter(field_name="model__name")
    label = django_filters.CharFilter()
    is_abnormal = django_filters.BooleanFilter()
    reviewed = django_filters.BooleanFilter(method="filter_reviewed", help_text="Whether a radiologist reviewed it.")
    queued = UtcDateTimeRangeFilter(field_name="queued_at", help_text="queued_after / queued_before (ISO 8601).")
    finished = UtcDateTimeRangeFilter(
        field_name="finished_at", help_text="finished_after / finished_before (ISO 8601)."
    )
    ordering = django_filters.OrderingFilter(
        fields=(("queued_at", "queued"), ("finished_at", "finished"), ("confidence", "confidence"))
    )

    class Meta:
        model = Prediction
        fields = ("status",)

    def filter_reviewed(self, queryset, name, value):
        # The flag on the row, not a join or an EXISTS on reviews: reviewed results are older than
        # the newest, so walking the list's order and probing reviews read most of the history
        # before the first page was full; the flag has a partial index in the list's order.
        return queryset.filter(reviewed=value)


class AIModelFilter(django_filters.FilterSet):
    name = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=AIModelStatus.choices)
    body_part = django_filters.ChoiceFilter(choices=BodyPart.choices)
    ordering = django_filters.OrderingFilter(fields=(("name", "name"), ("created_at", "created")))

    class Meta:
        model = AIModel
        fields = ("name", "status", "body_part")


class ReviewFilter(django_filters.FilterSet):
    prediction = django_filters.UUIDFilter(field_name="prediction_id")
    study = django_filters.UUIDFilter(field_name="prediction__image__study_id")
    patient = django_filters.UUIDFilter(field_name="prediction__image__study__patient_id")
    mrn = django_filters.CharFilter(field_name="prediction__image__study__patient__mrn", lookup_expr="iexact")
    accession = django_filters.CharFilter(field_name="prediction__image__study__accession_number", lookup_expr="iexact")
    decision = django_filters.ChoiceFilter(choices=ReviewDecision.choices)
    reviewer = django_filters.CharFilter(field_name="reviewer__username")
    reviewed = UtcDateTimeRangeFilter(
        field_name="reviewed_at", help_text="reviewed_after / reviewed_before (ISO 8601)."
    )
    ordering = django_filters.OrderingFilter(fields=(("reviewed_at", "reviewed"),))

    class Meta:
        model = Review
        fields = ("decision",)


class WorklistFilter(django_filters.FilterSet):
    modality = django_filters.MultipleChoiceFilter(choices=Modality.choices, distinct=False)
    body_part = django_filters.MultipleChoiceFilter(choices=BodyPart.choices, distinct=False)
    priority = django_filters.TypedMultipleChoiceFilter(choices=Priority.choices, coerce=int, distinct=False)
    status = django_filters.MultipleChoiceFilter(choices=StudyStatus.choices, distinct=False)
    mrn = django_filters.CharFilter(field_name="patient__mrn", lookup_expr="iexact")
    accession = django_filters.CharFilter(field_name="accession_number", lookup_expr="iexact")
    study_date = django_filters.DateFromToRangeFilter(help_text="study_date_after / study_date_before, inclusive.")
