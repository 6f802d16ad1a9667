"""Recording reads and writes of patient data. Pages, the API and tasks all call these."""

import logging
from collections.abc import Iterable
from typing import Any

from django.db import models

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
    items: Iterable[tuple[models.Model, Any]],
    interface: AuditInterface | str,
    request=None,
    detail: str = "",
    username: str = "",
    address: str | None = None,
) -> list[AuditEvent]:
    """One audit row per ``(obj, patient)`` pair, written in one INSERT (for pages of a list, or what
    one DICOM query or retrieve returned).

    The arguments mean the same as for ``audit_record``; ``patient`` may be None when ``obj`` is a Patient.
    """
    facts = _request_facts(request) if request is not None else {"ip_address": address}
    events = [
        _event(
            actor=actor,
            action=action,
            obj=obj,
            patient=patient,
            interface=interface,
            request=request,
            detail=detail,
            facts=facts,
            username=username,
        )
        for obj, patient in items
    ]
    if events:
        AuditEvent.objects.bulk_create(events)
    return events
