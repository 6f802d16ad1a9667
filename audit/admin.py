from django.contrib import admin

from audit.models import AuditAction, AuditEvent, AuditInterface, HistoricalPatient, HistoricalStudy


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


class AuditedAdminMixin:
    """For ModelAdmins of patient data: records each record opened, added or changed in the admin.

    Set ``audit_patient`` to a function of the object giving its patient (or its id) when the model
    is not Patient itself, e.g. ``audit_patient = staticmethod(lambda study: study.patient_id)``.
    """

    audit_patient = None

    def _audit(self, request, obj, action, detail: str = "") -> None:
        from audit.services import audit_record

        patient_of = type(self).audit_patient
        audit_record(
            actor=request.user,
            action=action,
            obj=obj,
            patient=patient_of(obj) if patient_of is not None else None,
            interface=AuditInterface.ADMIN,
            request=request,
            detail=detail,
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and getattr(response, "status_code", None) == 200:
            obj = self.get_object(request, object_id)
            if obj is not None:
                self._audit(request, obj, AuditAction.READ)
        return response

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        changed = ",".join(sorted(form.changed_data))[:255] if form is not None else ""
        self._audit(request, obj, AuditAction.UPDATE if change else AuditAction.CREATE, detail=changed)
