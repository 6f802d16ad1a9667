"""Log in throttling and lockout, the audit rows of logins, idle and absolute session timeouts, password rules."""

import time

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.sessions import LAST_ACTIVITY_AT, LOGIN_AT
from audit.models import AuditAction, AuditEvent
from tests.factories import UserFactory
from web.demo import DEMO_PASSWORD

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def nurse():
    user = UserFactory(username="nurse", role="staff")
    user.set_password(PASSWORD)
    user.save()
    return user


def _log_in(client, username, password, *, path="/login/", address="192.0.2.10"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def _events(action):
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_a_log_in_is_audited_with_who_when_where_and_interface(client, nurse):
    response = _log_in(client, "nurse", PASSWORD)
    assert response.status_code == 302
    [event] = _events(AuditAction.LOGIN)
    assert (event.actor, event.actor_username, event.interface) == (nurse, "nurse", "ui")
    assert (event.ip_address, event.method, event.path) == ("192.0.2.10", "POST", "/login/")
    assert (event.object_type, event.object_id) == ("accounts.user", str(nurse.pk))
    assert event.occurred_at is not None


def test_a_failed_log_in_is_audited_with_the_name_typed_and_never_the_password(client, nurse):
    response = _log_in(client, "nurse", "wrong password 1")
    assert response.status_code == 200
    [event] = _events(AuditAction.LOGIN_FAILED)
    assert (event.actor, event.actor_username, event.interface, event.ip_address) == (None, "nurse", "ui", "192.0.2.10")
    assert "wrong" not in str([getattr(event, f.attname) for f in AuditEvent._meta.fields])
    assert "_auth_user_id" not in client.session


def test_lockout_after_the_failure_limit_is_audited_and_refuses_even_the_right_password(client, nurse, settings):
    settings.AXES_FAILURE_LIMIT = 3
    codes = [_log_in(client, "nurse", f"wrong {i}").status_code for i in range(3)]
    assert codes == [200, 200, 429]
    [lockout] = _events(AuditAction.LOCKOUT)
    assert (lockout.actor_username, lockout.ip_address, lockout.interface) == ("nurse", "192.0.2.10", "ui")
    assert len(_events(AuditAction.LOGIN_FAILED)) == 3

    locked = _log_in(client, "nurse", PASSWORD)
    assert locked.status_code == 429
    assert b"Too many failed log ins" in locked.content
    assert "_auth_user_id" not in client.session
    assert _events(AuditAction.LOGIN) == []
    assert len(_events(AuditAction.LOCKOUT)) == 2


def test_the_lockout_holds_one_name_at_one_address_and_ends_after_the_cool_off(client, nurse, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for i in range(2):
        _log_in(client, "nurse", f"wrong {i}")
    assert _log_in(client, "nurse", PASSWORD).status_code == 429
    # The same nurse at another workstation, and a colleague at this one, are not locked out.
    assert _log_in(client, "nurse", PASSWORD, address="192.0.2.99").status_code == 302
    client.logout()
    colleague = UserFactory(username="colleague", role="staff")
    colleague.set_password(PASSWORD)
    colleague.save()
    assert _log_in(client, "colleague", PASSWORD).status_code == 302
    client.logout()
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME)
    assert _log_in(client, "nurse", PASSWORD).status_code == 302


def test_the_admin_log_in_is_throttled_and_audited_too(client, settings):
    settings.AXES_FAILURE_LIMIT = 2
    admin = UserFactory(username="boss", role="admin", is_superuser=True)
    admin.set_password(PASSWORD)
    admin.save()
    path = "/admin/login/?next=/admin/"
    assert [_log_in(client, "boss", "wrong", path=path).status_code for _ in range(2)] == [200, 429]
    assert {e.interface for e in _events(AuditAction.LOGIN_FAILED)} == {"admin"}
    assert [e.interface for e in _events(AuditAction.LOCKOUT)] == ["admin"]
    assert _log_in(client, "boss", PASSWORD, path=path).status_code == 429


def _signed_in(client, *, idle: float = 0, since_login: float = 0):
    _log_in(client, "nurse", PASSWORD)
    session = client.session
    now = int(time.time())
    session[LAST_ACTIVITY_AT] = now - int(idle)
    session[LOGIN_AT] = now - int(since_login)
    session.save()
    return session


def test_an_idle_session_is_signed_out_and_the_logout_audited(client, nurse, settings):
    _signed_in(client, idle=settings.MEDPORTAL_SESSION_IDLE_TIMEOUT + 1)
    response = client.get("/patients/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert "_auth_user_id" not in client.session
    [event] = _events(AuditAction.LOGOUT)
    assert (event.actor, event.detail, event.interface) == (nurse, "idle timeout", "ui")
    assert client.get("/patients/").status_code == 302
    assert client.get("/api/v1/patients/").status_code in (401, 403)


def test_activity_keeps_a_session_alive_a_timeout_at_a_time(client, nurse, settings):
    timeout = settings.MEDPORTAL_SESSION_IDLE_TIMEOUT
    assert timeout == 15 * 60
    _signed_in(client, idle=timeout - 60)
    assert client.get("/patients/").status_code == 200
    assert int(time.time()) - client.session[LAST_ACTIVITY_AT] <= 1  # sliding: the idle time starts again
    session = _signed_in(client, idle=timeout - 60)
    assert client.get("/patients/").status_code == 200
    session = client.session
    session[LAST_ACTIVITY_AT] -= 120  # two more minutes: past the timeout had it not slid
    session.save()
    assert client.get("/patients/").status_code == 200


def test_background_refreshes_do_not_keep_a_session_alive(client, nurse, settings):
    timeout = settings.MEDPORTAL_SESSION_IDLE_TIMEOUT
    session = _signed_in(client, idle=timeout - 30)
    stamp = session[LAST_ACTIVITY_AT]
    client.get("/patients/", HTTP_X_REQUESTED_WITH="fetch")
    assert client.session[LAST_ACTIVITY_AT] == stamp
    session = client.session
    session[LAST_ACTIVITY_AT] -= 60
    session.save()
    assert client.get("/patients/", HTTP_X_REQUESTED_WITH="fetch").status_code == 302


def test_a_session_ends_at_its_absolute_lifetime_however_active(client, nurse, settings):
    assert settings.SESSION_COOKIE_AGE == 12 * 60 * 60
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True
    _signed_in(client, idle=0, since_login=settings.SESSION_COOKIE_AGE + 1)
    assert client.get("/patients/").status_code == 302
    [event] = _events(AuditAction.LOGOUT)
    assert event.detail == "session lifetime over"


def test_the_timeouts_follow_the_settings(client, nurse, settings):
    settings.MEDPORTAL_SESSION_IDLE_TIMEOUT = 60
    _signed_in(client, idle=61)
    assert client.get("/patients/").status_code == 302


def test_password_rules_need_twelve_characters_and_refuse_common_or_numeric_ones(nurse):
    nurse.first_name = "Florence"
    for weak in ("Sh0rt&sweet", "password1234", "839274619283746", "florence1234"):
        with pytest.raises(ValidationError):
            validate_password(weak, user=nurse)
    validate_password("ward 7 night shift", user=nurse)


def test_the_demo_password_still_meets_the_rules():
    for username in ("staff", "radiologist", "admin"):
        validate_password(DEMO_PASSWORD, user=UserFactory.build(username=username))


def test_an_explicit_logout_is_audited(client, nurse):
    _log_in(client, "nurse", PASSWORD)
    client.post("/logout/")
    [event] = _events(AuditAction.LOGOUT)
    assert (event.actor, event.detail) == (nurse, "")


def test_the_log_in_page_says_the_logout_happened(client, nurse):
    _log_in(client, "nurse", PASSWORD)
    response = client.post("/logout/", follow=True)
    assert response.redirect_chain[-1][0] == "/login/"
    assert "You are signed out." in response.content.decode()
    assert "You are signed out." not in client.get("/login/").content.decode()  # said once
