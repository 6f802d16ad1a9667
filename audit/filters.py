import django_filters

from api.filters import UtcDateTimeRangeFilter
from audit.models import AuditAction, AuditEvent, AuditInterface


class AuditEventFilter(django_filters.FilterSet):
    patient = django_filters.UUIDFilter(field_name="patient_id")
    mrn = django_filters.CharFilter(field_name="patient__mrn", lookup_expr="iexact")
    actor = django_filters.CharFilter(field_name="actor_username", help_text="Username.")
    action = django_filters.MultipleChoiceFilter(choices=AuditAction.choices, distinct=False)
    interface = django_filters.MultipleChoiceFilter(choices=AuditInterface.choices, distinct=False)
    object_type = django_filters.CharFilter()
    object_id = django_filters.CharFilter()
    occurred = UtcDateTimeRangeFilter(
        field_name="occurred_at", help_text="occurred_after / occurred_before (ISO 8601)."
    )

    class Meta:
        model = AuditEvent
        fields = ("action",)
