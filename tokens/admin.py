from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils import timezone

from tokens.models import ApiToken
from tokens.services import api_token_create, api_token_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens for other hospital systems. The key is shown once, when the token is created."""

    list_display = ("name", "user", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at", "usable")
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("name", "user__username", "prefix")
    list_select_related = ("user",)
    readonly_fields = ("prefix", "created_at", "created_by", "revoked_at", "last_used_at")
    actions = ("revoke",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "user", "expires_at")
        return ("name", "user", "prefix", "expires_at", "created_at", "created_by", "revoked_at", "last_used_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # A token keeps its user: to move access, revoke it and create another.
        return (*self.readonly_fields, "user")

    @admin.display(boolean=True)
    def usable(self, obj: ApiToken) -> bool:
        return obj.is_usable

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        token, key = api_token_create(name=obj.name, user=obj.user, expires_at=obj.expires_at, created_by=request.user)
        obj.pk = token.pk
        obj.key_hash, obj.prefix, obj.created_at, obj.expires_at = (
            token.key_hash,
            token.prefix,
            token.created_at,
            token.expires_at,
        )
        # Kept on this request's object only, for response_add; never stored, logged or put in a cookie.
        obj.plain_key = key

    def response_add(self, request, obj, post_url_continue=None):
        """The new key, on the page that answers the form: a message would travel in the messages cookie."""
        key = getattr(obj, "plain_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "API token created",
            "token": obj,
            "key": key,
        }
        response = TemplateResponse(request, "admin/tokens/apitoken/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def has_delete_permission(self, request, obj=None):
        # Revoked tokens stay on record; revoke instead of deleting.
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            api_token_revoke(token=token)
            count += 1
        self.message_user(request, f"Revoked {count} token(s) at {timezone.localtime():%Y-%m-%d %H:%M}.")
