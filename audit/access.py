"""One way to record an access to patient data, for the pages, the API, DICOMweb and the admin.

Every view declares where it is defined how its accesses are audited, and records them with
``audit_access``::

    @audited(AuditInterface.UI)
    @role_required(allowed_roles(Resource.STUDY, Act.READ))
    def study_detail(request, study_id):
        study = ...
        audit_access(request, obj=study, patient=study.patient_id)

    @audited(AuditInterface.API)
    class StudyDetailApi(APIView): ...

    @audit_exempt("the sign-in form")
    class LoginView(auth_views.LoginView): ...

``audit_access`` takes the interface from the declaration of the view that answered the request,
so a view cannot record an access it has not declared. The view gives what was touched and whose
it is (``obj`` and ``patient``, or ``rows`` of them). tests/audit/test_every_url_audited.py walks
every URL pattern: each view carries a declaration, an audited one writes its rows and an exempt
one shows no patient data. The admin builds its own views; ``audit.admin.AuditedAdminMixin``
declares them and records through this same function.

The C-STORE receiver, the log in signals and tasks have no view; they call
``audit.services.audit_record`` directly.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from rest_framework.authentication import SessionAuthentication

from audit.models import AuditAction, AuditInterface
from audit.services import audit_record_many

View = TypeVar("View", bound=Callable)

ATTRIBUTE = "audit_declaration"

# The interface of a view that serves the pages (a browser session: UI) and other systems (a token: API) alike.
UI_OR_API = None


@dataclass(frozen=True)
class AuditDeclaration:
    interface: AuditInterface | None = UI_OR_API
    exempt: str = ""  # why the view shows and changes no patient data


def audited(interface: AuditInterface | None) -> Callable[[View], View]:
    """Declare that a view (function or class) records its accesses to patient data through ``interface``."""
    return _declare(AuditDeclaration(interface=interface))


def audit_exempt(reason: str) -> Callable[[View], View]:
    """Declare that a view shows and changes no patient data, and why (e.g. "the sign-in form")."""
    if not reason:
        raise ValueError("An exemption from the audit says why.")
    return _declare(AuditDeclaration(exempt=reason))


def _declare(declaration: AuditDeclaration) -> Callable[[View], View]:
    def mark(view: View) -> View:
        setattr(view, ATTRIBUTE, declaration)
        return view

    return mark


def declaration_of(view: Callable) -> AuditDeclaration | None:
    """The declaration of a URL pattern's callback: on the function, or on the class of ``as_view()``."""
    for holder in (view, getattr(view, "view_class", None)):
        declaration = getattr(holder, ATTRIBUTE, None)
        if declaration is not None:
            return declaration
    return None


def audit_access(
    request,
    *,
    action: AuditAction = AuditAction.READ,
    obj: models.Model | None = None,
    patient: Any = None,
    rows: Iterable[tuple[Any, Any]] | None = None,
    model: type[models.Model] | None = None,
    detail: str = "",
    interface: AuditInterface | None = None,
) -> None:
    """Record that the request's user did ``action`` on ``obj`` of ``patient`` (or on each of ``rows``).

    - ``patient``: the Patient or its id; may be omitted when ``obj`` is the Patient.
    - ``rows``: ``(obj, patient)`` pairs, e.g. the records of a list: one audit row each, in one
      INSERT whatever their number (no rows, nothing recorded).
    - ``model``: the rows are ``(pk, patient)`` pairs of records of this model (a list read as
      ``values()`` rows, without model instances).
    - ``detail``: short free text, e.g. "list" or "rerun"; never a name, an MRN or a search term.
    - ``interface``: only for views without a URL declaration (the admin's).

    Call it inside the request's transaction: a write that rolls back leaves no row claiming it happened.
    """
    audit_record_many(
        actor=request.user,
        action=action,
        items=list(rows) if rows is not None else [(obj, patient)],
        interface=interface or _declared_interface(request),
        request=request,
        detail=detail,
        model=model,
    )


def _declared_interface(request) -> AuditInterface:
    match = getattr(request, "resolver_match", None)
    declaration = declaration_of(match.func) if match is not None else None
    if declaration is None or declaration.exempt:
        raise ImproperlyConfigured(f"The view of {request.path} records an access without declaring @audited.")
    if declaration.interface is not None:
        return declaration.interface
    # The pages link such views with the browser session; other systems come with an API token.
    via_page = isinstance(getattr(request, "successful_authenticator", None), SessionAuthentication)
    return AuditInterface.UI if via_page else AuditInterface.API
