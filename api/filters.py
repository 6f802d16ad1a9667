import datetime

import django_filters
from rest_framework.exceptions import ValidationError


class UtcDateTimeRangeFilter(django_filters.IsoDateTimeFromToRangeFilter):
    """``<name>_after`` / ``<name>_before`` in ISO 8601, compared in UTC.

    ISO 8601 allows offsets up to ±23:59 but PostgreSQL only ±15:59, so every bound is converted
    to UTC before it reaches the database.
    """

    def filter(self, qs, value):
        if value:
            try:
                value = slice(_utc(value.start), _utc(value.stop))
            except OverflowError as exc:
                raise ValidationError({self.field_name: ["The date and time is out of range."]}) from exc
        return super().filter(qs, value)


def _utc(moment: datetime.datetime | None) -> datetime.datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(datetime.UTC)
