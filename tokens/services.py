import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from tokens.models import TOKEN_PREFIX_LENGTH, ApiToken, token_generate, token_hash


@transaction.atomic
def api_token_create(
    *, name: str, user: User, expires_at: datetime.datetime | None = None, created_by: User | None = None
) -> tuple[ApiToken, str]:
    """Create a token; returns it with the plain key, which is never stored and cannot be shown again.

    Without ``expires_at`` the token expires after MEDPORTAL_API_TOKEN_DAYS days, so a forgotten
    credential does not work forever.
    """
    if expires_at is None:
        expires_at = api_token_default_expiry()
    key = token_generate()
    token = ApiToken(
        name=name.strip(),
        user=user,
        key_hash=token_hash(key),
        prefix=key[:TOKEN_PREFIX_LENGTH],
        expires_at=expires_at,
        created_by=created_by,
    )
    token.full_clean()
    token.save()
    return token, key


def api_token_default_expiry(*, now: datetime.datetime | None = None) -> datetime.datetime | None:
    days = settings.MEDPORTAL_API_TOKEN_DAYS
    if not days:
        return None
    return (now or timezone.now()) + datetime.timedelta(days=days)


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
