import datetime
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.utils import timezone

from api.log_filters import RedactQueryStrings
from tests.factories import PatientFactory
from tokens.services import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


def _production_env() -> dict:
    # Only the production variables: none a test process may have set (e.g. DJANGO_ALLOW_ASYNC_UNSAFE).
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MEDPORTAL_"))}
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "medportal.settings.production",
        "DJANGO_SECRET_KEY": "x" * 20 + "-production-like-secret-key-for-the-check-0123456789",
        "MEDPORTAL_DEID_KEY": "y" * 20 + "-production-like-deidentification-key",
        "DJANGO_ALLOWED_HOSTS": "medportal.example.org",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/medportal",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    }


def test_check_deploy_is_clean_with_production_settings():
    env = _production_env()
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_throttles_through_a_cache_shared_by_all_web_processes():
    code = "from django.conf import settings; print(settings.CACHES['default']['BACKEND'])"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPO,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip().splitlines()[-1] == "django.core.cache.backends.redis.RedisCache", result.stderr


def _bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def test_token_authenticates_and_is_stored_hashed(api_client, user_for_role):
    token, key = api_token_create(name="RIS", user=user_for_role("staff"))
    assert key not in token.key_hash
    assert api_client.get("/api/v1/patients/", **_bearer(key)).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_expired_revoked_and_unknown_tokens_get_401(api_client, user_for_role):
    user = user_for_role("staff")
    _, expired = api_token_create(name="old", user=user, expires_at=timezone.now() - datetime.timedelta(seconds=1))
    revoked_token, revoked = api_token_create(name="gone", user=user)
    api_token_revoke(token=revoked_token)
    for key in (expired, revoked, "not-a-token"):
        response = api_client.get("/api/v1/patients/", **_bearer(key))
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "authentication_failed"


def test_token_clients_are_rate_limited(api_client, client_for_role, user_for_role, settings):
    cache.clear()
    settings.MEDPORTAL_API_TOKEN_RATE = "3/min"
    _, key = api_token_create(name="busy", user=user_for_role("staff"))
    codes = [api_client.get("/api/v1/models/", **_bearer(key)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    # A person in a browser session is not throttled by the token limit.
    session = client_for_role("staff")
    assert {session.get("/api/v1/models/").status_code for _ in range(4)} == {200}


def test_docs_pages_use_local_assets_only(client_for_role):
    client = client_for_role("staff")
    for path in ("/api/v1/docs/", "/api/v1/redoc/"):
        html = client.get(path).content.decode()
        # No script, style or image is fetched from another host.
        assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html), html
        assert "/static/drf_spectacular_sidecar/" in html
    schema = client.get("/api/v1/schema/").json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/patients/" in schema["paths"]


def test_api_use_logs_no_patient_names_or_mrns(client_for_role, caplog):
    patient = PatientFactory(mrn="SECRET-MRN-77", family_name="Confidential")
    client = client_for_role("staff")
    with caplog.at_level(logging.DEBUG):
        client.get(f"/api/v1/patients/{patient.id}/")
        client.get("/api/v1/patients/", {"mrn": "SECRET-MRN-77"})
        client.post("/api/v1/patients/", {"mrn": "SECRET-MRN-77", "family_name": "Confidential"}, format="json")
        client_for_role("roleless").get(f"/api/v1/patients/{patient.id}/")
    assert "SECRET-MRN-77" not in caplog.text
    assert "Confidential" not in caplog.text


def test_admin_revokes_a_token(client, api_client, user_for_role):
    token, key = api_token_create(name="Lab", user=user_for_role("staff"))
    client.force_login(user_for_role("admin"))
    assert client.get("/admin/tokens/apitoken/").status_code == 200
    response = client.post("/admin/tokens/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True)
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert api_client.get("/api/v1/patients/", **_bearer(key)).status_code == 401


def test_query_strings_are_redacted_from_log_lines():
    record = logging.LogRecord(
        "django.server",
        logging.INFO,
        __file__,
        1,
        '"%s" %s',
        ("GET /api/v1/patients/?mrn=SECRET-1 HTTP/1.1", 200),
        None,
    )
    assert RedactQueryStrings().filter(record) is True
    assert record.getMessage() == '"GET /api/v1/patients/?[redacted] HTTP/1.1" 200'
    assert "redact_query_strings" in django_settings.LOGGING["handlers"]["console"]["filters"]
    handler_filters = [f for h in logging.getLogger().handlers for f in h.filters]
    assert any(isinstance(f, RedactQueryStrings) for f in handler_filters)


def test_the_development_servers_request_lines_are_redacted_too():
    # runserver (the demo) logs each request line through "django.server", e.g. a name search.
    logger = logging.getLogger("django.server")
    ours = [h for h in logger.handlers if not type(h).__module__.startswith("_pytest")]
    assert ours and not logger.propagate
    for handler in ours:
        assert any(isinstance(f, RedactQueryStrings) for f in handler.filters), handler
