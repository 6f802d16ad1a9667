"""The admin site: Django's, with its autocomplete audited like a change list search.

An autocomplete field (a study's patient) answers with the names of the patients it matches, so it
records one row per record returned, as a search of the change list does. Installed in place of
``django.contrib.admin`` (INSTALLED_APPS names ``AuditedAdminConfig``), so ``admin.site`` is this site.
"""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.views.autocomplete import AutocompleteJsonView


class AuditedAutocompleteJsonView(AutocompleteJsonView):
    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        # The ModelAdmin of the records searched; audit.admin.AuditedAdminMixin records what it shows.
        audit_shown = getattr(self.model_admin, "audit_shown", None)
        if audit_shown is not None:
            context["object_list"] = list(context["object_list"])  # evaluated once, for the trail and the answer
            audit_shown(self.request, context["object_list"], detail="autocomplete")
        return context


class AuditedAdminSite(admin.AdminSite):
    def autocomplete_view(self, request):
        return AuditedAutocompleteJsonView.as_view(admin_site=self)(request)


class AuditedAdminConfig(AdminConfig):
    default_site = "audit.admin_site.AuditedAdminSite"
