from django.contrib import admin

from audit.models import AuditEvent, HistoricalPatient, HistoricalStudy


class ReadOnlyAdmin(admin.ModelAdmin):
    """Browse only: nobody adds, changes or deletes audit records, superusers included."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        user = request.user
        return user.is_active and (user.is_superuser or user.has_role("admin"))

    def has_module_permission(self, request):
        return self.has_view_permission(request)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "actor_username", "action", "interface", "object_type", "object_id", "ip_address")
    list_filter = ("action", "interface", "object_type", "occurred_at")
    # Browse by patient (MRN or id) and by user.
    search_fields = ("actor_username", "patient__mrn", "=patient__id", "=object_id")
    list_select_related = ("patient",)
    autocomplete_fields = ()
    date_hierarchy = "occurred_at"
    readonly_fields = [field.name for field in AuditEvent._meta.fields]
    show_full_result_count = False

    def get_list_filter(self, request):
        return (*self.list_filter, ("actor", admin.RelatedOnlyFieldListFilter))


@admin.register(HistoricalPatient)
class HistoricalPatientAdmin(ReadOnlyAdmin):
    list_display = ("history_date", "history_type", "history_user", "id", "mrn", "family_name", "given_name")
    list_filter = ("history_type", "history_date")
    search_fields = ("mrn", "=id", "history_user__username")
    readonly_fields = [field.name for field in HistoricalPatient._meta.fields]


@admin.register(HistoricalStudy)
class HistoricalStudyAdmin(ReadOnlyAdmin):
    list_display = ("history_date", "history_type", "history_user", "id", "accession_number", "status", "priority")
    list_filter = ("history_type", "history_date", "status")
    search_fields = ("accession_number", "=id", "=patient__id", "history_user__username")
    readonly_fields = [field.name for field in HistoricalStudy._meta.fields]
