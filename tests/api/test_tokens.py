"""API tokens: a key is shown once, on the page that answers the form, and tokens expire by default."""

import datetime

import pytest
from django.utils import timezone

from tokens.models import ApiToken, token_hash
from tokens.services import api_token_create

pytestmark = pytest.mark.django_db


def test_admin_creates_a_token_and_sees_the_key_once_on_the_page(client, user_for_role, settings):
    settings.MEDPORTAL_API_TOKEN_DAYS = 30
    client.force_login(user_for_role("admin"))
    response = client.post(
        "/admin/tokens/apitoken/add/",
        {"name": "PACS", "user": user_for_role("staff").id, "expires_at_0": "", "expires_at_1": ""},
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(name="PACS")
    key = response.context["key"]
    assert token_hash(key) == token.key_hash and key in response.content.decode()
    assert ApiToken.objects.usable().filter(pk=token.pk).exists()
    # Not in a cookie, not in a cache, not in the session: only in this one answer.
    assert "messages" not in response.cookies and all(key not in str(c) for c in response.cookies.values())
    assert "no-store" in response["Cache-Control"]
    assert key not in str(dict(client.session))
    assert key not in client.get(f"/admin/tokens/apitoken/{token.pk}/change/").content.decode()
    assert key not in client.get("/admin/tokens/apitoken/").content.decode()
    # Left empty, the expiry is the configured default.
    expected = timezone.now() + datetime.timedelta(days=30)
    assert abs(token.expires_at - expected) < datetime.timedelta(minutes=1)


def test_tokens_expire_by_default_and_the_lifetime_is_configurable(user_for_role, settings):
    user = user_for_role("staff")
    settings.MEDPORTAL_API_TOKEN_DAYS = 90
    token, _ = api_token_create(name="RIS", user=user)
    assert abs(token.expires_at - (timezone.now() + datetime.timedelta(days=90))) < datetime.timedelta(minutes=1)

    chosen = timezone.now() + datetime.timedelta(days=3)
    assert api_token_create(name="Lab", user=user, expires_at=chosen)[0].expires_at == chosen

    settings.MEDPORTAL_API_TOKEN_DAYS = 0
    assert api_token_create(name="Archive", user=user)[0].expires_at is None
