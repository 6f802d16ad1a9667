"""Logins, failed logins, lockouts and logouts go into the audit trail like any other access.

Django's auth signals cover the log in page and the admin's; django-axes's ``user_locked_out``
covers lockouts (a lockout is recorded with the failed attempt that caused or met it).
"""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.urls import reverse

from accounts.sessions import LOGOUT_REASON_ATTRIBUTE
from audit.models import AuditAction, AuditInterface
from audit.services import audit_record


def _interface(request) -> AuditInterface:
    if request is not None and request.path.startswith(reverse("admin:index")):
        return AuditInterface.ADMIN
    return AuditInterface.UI


def _is_http_request(request) -> bool:
    # The test client's force_login()/logout() use a bare HttpRequest (no method): not a person at
    # a log in page. Every log in through a page or the admin is a POST.
    return request is not None and request.method is not None


def _typed_username(credentials: dict | None) -> str:
    # Django has already replaced the password with asterisks; only the name typed is kept.
    return str((credentials or {}).get("username") or "")


@receiver(user_logged_in, dispatch_uid="audit_user_logged_in")
def _logged_in(sender, request, user, **kwargs) -> None:
    if not _is_http_request(request):
        return
    audit_record(actor=user, action=AuditAction.LOGIN, obj=user, interface=_interface(request), request=request)


@receiver(user_login_failed, dispatch_uid="audit_user_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    if not _is_http_request(request):
        return  # not a log in through a page (e.g. a management command checking a password)
    audit_record(
        actor=None,
        username=_typed_username(credentials),
        action=AuditAction.LOGIN_FAILED,
        interface=_interface(request),
        request=request,
    )


@receiver(user_locked_out, dispatch_uid="audit_user_locked_out")
def _locked_out(sender, request, username, ip_address, **kwargs) -> None:
    audit_record(
        actor=None,
        username=username or "",
        action=AuditAction.LOCKOUT,
        interface=_interface(request),
        request=request,
        detail="too many failed log ins",
    )


@receiver(user_logged_out, dispatch_uid="audit_user_logged_out")
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is None or not _is_http_request(request):
        return
    audit_record(
        actor=user,
        action=AuditAction.LOGOUT,
        obj=user,
        interface=_interface(request),
        request=request,
        detail=getattr(request, LOGOUT_REASON_ATTRIBUTE, ""),
    )
