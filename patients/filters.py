import django_filters

from api.filters import UtcDateTimeRangeFilter
from patients.models import Patient, Sex


class PatientFilter(django_filters.FilterSet):
    mrn = django_filters.CharFilter(field_name="mrn", lookup_expr="iexact", help_text="Exact MRN.")
    search = django_filters.CharFilter(method="filter_search", help_text="MRN (or its start) or words of the name.")
    sex = django_filters.MultipleChoiceFilter(choices=Sex.choices, distinct=False)
    birth_date = django_filters.DateFromToRangeFilter(help_text="birth_date_after / birth_date_before, inclusive.")
    created = UtcDateTimeRangeFilter(field_name="created_at", help_text="created_after / created_before (ISO 8601).")
    ordering = django_filters.OrderingFilter(
        fields=(("family_name", "family_name"), ("mrn", "mrn"), ("birth_date", "birth_date"), ("created_at", "created"))
    )

    class Meta:
        model = Patient
        fields = ("mrn", "sex")

    def filter_search(self, queryset, name, value):
        # The same search as the pages use.
        return queryset.search(value)
