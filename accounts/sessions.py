"""Sessions for shared ward workstations: signed out after a short idle time and after a shift.

A session ends after ``MEDPORTAL_SESSION_IDLE_TIMEOUT`` seconds without the user doing anything
(sliding: every request the user makes counts, background refreshes of a page do not), and in any
case ``SESSION_COOKIE_AGE`` seconds after log in, however active.
"""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.db import InterfaceError, OperationalError
from django.dispatch import receiver

LOGIN_AT = "medportal_login_at"
LAST_ACTIVITY_AT = "medportal_last_activity_at"
# Set on the request when the session is ended here, so whoever records the logout knows why.
LOGOUT_REASON_ATTRIBUTE = "medportal_logout_reason"
IDLE_TIMEOUT = "idle timeout"
LIFETIME_OVER = "session lifetime over"


@receiver(user_logged_in, dispatch_uid="accounts_session_login_at")
def _stamp_login(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        now = int(time.time())
        request.session[LOGIN_AT] = now
        request.session[LAST_ACTIVITY_AT] = now


def _is_background_refresh(request) -> bool:
    # The study page polls its results fragment with fetch() while AI work is pending; a screen
    # left open must still time out.
    return request.method == "GET" and "HTTP_X_REQUESTED_WITH" in request.META


class SessionTimeoutMiddleware:
    """Signs out a session that was idle too long or outlived its absolute lifetime.

    Goes after AuthenticationMiddleware and MessageMiddleware. The request then carries on as anonymous, so a page
    redirects to the log in page and the API answers 401/403.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            signed_in = hasattr(request, "session") and request.user.is_authenticated
        except (OperationalError, InterfaceError):
            # The session or user cannot be read during a database outage; the view meets the same
            # error and answers 503 (web.middleware), which a middleware cannot.
            signed_in = False
        if signed_in:
            self._check(request)
        return self.get_response(request)

    def _check(self, request) -> None:
        session = request.session
        now = int(time.time())
        login_at = session.setdefault(LOGIN_AT, now)
        last_activity_at = session.setdefault(LAST_ACTIVITY_AT, now)
        idle_timeout = settings.MEDPORTAL_SESSION_IDLE_TIMEOUT
        reason = None
        if now - login_at >= settings.SESSION_COOKIE_AGE:
            reason = LIFETIME_OVER
        elif idle_timeout and now - last_activity_at >= idle_timeout:
            reason = IDLE_TIMEOUT
        if reason:
            setattr(request, LOGOUT_REASON_ATTRIBUTE, reason)
            logout(request)
            messages.info(request, f"You were signed out ({reason}). Please log in again.")
            return
        # Saving the session on every request would cost a write each time; a stamp a little
        # stale (at most a tenth of the timeout, or a minute) shortens the idle time by as much.
        resolution = min(60, idle_timeout // 10) if idle_timeout else 60
        if not _is_background_refresh(request) and now - last_activity_at >= resolution:
            session[LAST_ACTIVITY_AT] = now
