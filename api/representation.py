"""Pieces for serializers that write their representation out rather than build it field by field.

DRF resolves each declared field's source, checks it for None and converts it, row by row; for list
pages that is most of the serializer's time. A serializer that writes its dict out uses these to
format values exactly as the DRF field would (each such serializer is tested equal to DRF's output).
"""

from rest_framework import serializers


def time_zone_of(field: serializers.DateTimeField):
    """The zone a DRF ``DateTimeField`` converts to, looked up once per row rather than per value."""
    return getattr(field, "timezone", None) or field.default_timezone()


def datetime_text(value, zone) -> str | None:
    """``DateTimeField.to_representation`` with the default ISO 8601 format (UTC written as ``Z``)."""
    if value is None:
        return None
    text = (value.astimezone(zone) if zone is not None else value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
