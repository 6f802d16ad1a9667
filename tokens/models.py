import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

# Shown to the user once; only its hash is kept, so a database leak gives no working credential.
TOKEN_BYTES = 32
TOKEN_PREFIX_LENGTH = 8


def token_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def token_generate() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


class ApiTokenQuerySet(models.QuerySet):
    def usable(self, *, now=None) -> "ApiTokenQuerySet":
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True, user__is_active=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A credential for another hospital system (a machine client) acting as one user."""

    name = models.CharField(max_length=120, help_text="Which system uses it, e.g. 'RIS integration'.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="api_tokens",
        help_text="The client acts with this user's roles.",
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=TOKEN_PREFIX_LENGTH, editable=False, help_text="First characters of the key, to recognise it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: the configured default lifetime (MEDPORTAL_API_TOKEN_DAYS)."
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        # The table keeps the name it had before tokens became their own app, so no data moved.
        db_table = "api_apitoken"
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_usable(self) -> bool:
        if self.revoked_at is not None or not self.user.is_active:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()
