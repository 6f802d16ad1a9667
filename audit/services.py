"""Recording reads and writes of patient data. Pages, the API and tasks all call these."""

import logging
from collections.abc import Iterable
from typing import Any

from django.db import connection, models
from django.utils import timezone

from audit.models import AuditAction, AuditEvent, AuditInterface

logger = logging.getLogger(__name__)


def _request_facts(request) -> dict[str, Any]:
    if request is None:
        return {}
    # A DRF Request wraps the Django HttpRequest; both have META, path and method.
    meta = request.META
    ip = meta.get("REMOTE_ADDR") or None
    return {
        "ip_address": ip,
        "forwarded_for": meta.get("HTTP_X_FORWARDED_FOR", "")[:255],
        "user_agent": meta.get("HTTP_USER_AGENT", "")[:255],
        "method": (request.method or "")[:8],
        "path": request.path[:255],
    }


def _actor_facts(actor, username: str) -> dict[str, Any]:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return {"actor": None, "actor_username": username[:150]}
    return {"actor": actor, "actor_username": actor.get_username()[:150]}


def _patient_id(obj: models.Model | None, patient) -> Any:
    if patient is not None:
        return patient.pk if isinstance(patient, models.Model) else patient
    if obj is None:
        return None
    if obj._meta.label_lower == "patients.patient":
        return obj.pk
    return None


def _event(
    *, actor, action, obj, patient, interface, request, detail: str, facts: dict, username: str = ""
) -> AuditEvent:
    return AuditEvent(
        **_actor_facts(actor, username),
        **facts,
        action=AuditAction(action),
        interface=AuditInterface(interface),
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        patient_id=_patient_id(obj, patient),
        detail=detail[:255],
    )


def audit_record(
    *,
    actor,
    action: AuditAction | str,
    obj: models.Model | None = None,
    patient=None,
    interface: AuditInterface | str,
    request=None,
    detail: str = "",
    username: str = "",
    address: str | None = None,
) -> AuditEvent:
    """Record that ``actor`` did ``action`` on ``obj`` (patient data of ``patient``) through ``interface``.

    - ``actor``: the User (AnonymousUser or None is recorded as nobody).
    - ``action``: AuditAction — READ, CREATE, UPDATE, DELETE or DOWNLOAD; LOGIN, LOGIN_FAILED, LOCKOUT, LOGOUT.
    - ``obj``: the record read or written (a Patient, Study, Image, Prediction, Review ...).
    - ``patient``: the Patient (or its id) whose data it is; may be omitted when ``obj`` is the Patient.
    - ``interface``: AuditInterface — API, UI, ADMIN or SYSTEM.
    - ``request``: the HttpRequest (or DRF Request), for the IP address, user agent, method and path.
    - ``detail``: short free text, e.g. "list" or "rerun"; never put names or MRNs here.
    - ``username``: who it was when there is no signed-in ``actor``, e.g. the name typed at a failed log in,
      or the calling AE title of a DICOM peer.
    - ``address``: the peer's IP address when there is no ``request`` (a DICOM association).

    Call it inside the request's transaction: a write that rolls back leaves no audit row claiming it
    happened. Example from a page::

        audit_record(actor=request.user, action=AuditAction.READ, obj=patient,
                     interface=AuditInterface.UI, request=request)
    """
    event = _event(
        actor=actor,
        action=action,
        obj=obj,
        patient=patient,
        interface=interface,
        request=request,
        detail=detail,
        facts=_request_facts(request) if request is not None else {"ip_address": address},
        username=username,
    )
    event.save()
    return event


def audit_record_many(
    *,
    actor,
    action: AuditAction | str,
    items: Iterable[tuple[Any, Any]],
    interface: AuditInterface | str,
    request=None,
    detail: str = "",
    username: str = "",
    address: str | None = None,
    model: type[models.Model] | None = None,
) -> int:
    """One audit row per ``(obj, patient)`` pair, written in one INSERT (for pages of a list, or what
    one DICOM query or retrieve returned). Returns the number of rows written.

    The arguments mean the same as for ``audit_record``; ``patient`` may be None when ``obj`` is a Patient.
    With ``model``, each pair is ``(pk, patient)`` of a record of that model, for a list read as
    ``values()`` rows rather than model instances.
    """
    if model is not None:
        object_type = model._meta.label_lower
        rows = [(object_type, str(pk), patient) for pk, patient in items]
    else:
        rows = [
            (
                obj._meta.label_lower if obj is not None else "",
                str(obj.pk) if obj is not None else "",
                _patient_id(obj, patient),
            )
            for obj, patient in items
        ]
    if not rows:
        return 0
    shared = {
        **_actor_facts(actor, username),
        **(_request_facts(request) if request is not None else {"ip_address": address}),
        "action": AuditAction(action),
        "interface": AuditInterface(interface),
        "detail": detail[:255],
    }
    if connection.vendor == "postgresql":
        _insert_unnested(shared, rows)
    else:
        AuditEvent.objects.bulk_create(
            AuditEvent(**shared, object_type=object_type, object_id=object_id, patient_id=_key(patient))
            for object_type, object_id, patient in rows
        )
    return len(rows)


def _key(patient) -> Any:
    return patient.pk if isinstance(patient, models.Model) else patient


# The columns every row of one audit_record_many call has in common, and those of each row.
_PER_ROW = ("object_type", "object_id", "patient")


def _insert_unnested(shared: dict[str, Any], rows: list[tuple[str, str, Any]]) -> None:
    """``rows`` as one INSERT … SELECT from three arrays, the values they share given once.

    A page of a hundred rows through ``bulk_create`` is a statement of 1,400 parameters, each
    prepared by its field in Python, which cost more than the database's insert of the rows.
    """
    per_row = [AuditEvent._meta.get_field(name) for name in _PER_ROW]
    fields = {
        field.name: field
        for field in AuditEvent._meta.concrete_fields
        if not field.primary_key and field.name not in _PER_ROW
    }
    # What bulk_create would write for a column not given: the field's default.
    values = {name: field.get_default() for name, field in fields.items()}
    values.update(shared, occurred_at=timezone.now(), actor=_key(shared["actor"]))
    # Text arrays for the text columns: the INSERT then checks their lengths as bulk_create's would.
    arrays = [f"%s::{'text' if isinstance(f, models.CharField) else f.db_type(connection)}[]" for f in per_row]
    quote = connection.ops.quote_name
    table = quote(AuditEvent._meta.db_table)
    columns = ", ".join(quote(field.column) for field in [*fields.values(), *per_row])
    select = ", ".join([*["%s"] * len(fields), *(f"r.{field.column}" for field in per_row)])
    names = ", ".join(field.column for field in per_row)
    # Names from the model's metadata only; every value is a parameter.
    sql = f"INSERT INTO {table} ({columns}) SELECT {select} FROM unnest({', '.join(arrays)}) AS r({names})"  # noqa: S608
    params = [field.get_db_prep_save(values[name], connection) for name, field in fields.items()]
    object_types, object_ids, patients = zip(*rows, strict=True)
    patient_keys = [None if patient is None else str(_key(patient)) for patient in patients]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, list(object_types), list(object_ids), patient_keys])
