from django.contrib import admin
from django.contrib.admin import helpers

from accounts.policy import PolicyAdminMixin, Resource
from audit.access import audit_access
from audit.models import AuditAction, AuditEvent, AuditInterface, HistoricalPatient, HistoricalStudy


class ReadOnlyAdmin(PolicyAdminMixin, admin.ModelAdmin):
    """Browse only, for administrators: the policy lets nobody add, change or delete audit records."""

    policy_resource = Resource.AUDIT


class AuditedAdminMixin:
    """For ModelAdmins of patient data: every admin view that shows or changes a record is audited.

    The admin builds these views itself, so the mixin is their audit declaration; they record with
    ``audit.access.audit_access`` like every page, API endpoint and DICOMweb service.

    The change list (and its search) records each row shown, in one INSERT; the change, history and
    delete pages record the record opened; saves, deletes and actions record what they touched.
    Set ``audit_patient`` to a function of the object giving its patient id when the model is not
    Patient itself, e.g. ``audit_patient = staticmethod(lambda study: study.patient_id)``; it should
    need no query for rows of the change list (see ``list_select_related``).
    """

    audit_patient = None

    def _patient_of(self, obj):
        patient_of = type(self).audit_patient
        return patient_of(obj) if patient_of is not None else None

    def _audit_many(self, request, objs, action, detail: str = "") -> None:
        rows = [(obj, self._patient_of(obj)) for obj in objs]
        audit_access(request, action=action, rows=rows, detail=detail, interface=AuditInterface.ADMIN)

    def audit_shown(self, request, objs, *, detail: str) -> None:
        """Records shown in a list: the change list, its search, an autocomplete field's answer."""
        self._audit_many(request, objs, AuditAction.READ, detail)

    def _audit(self, request, obj, action, detail: str = "") -> None:
        self._audit_many(request, [obj], action, detail)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if changelist is not None:
            # Evaluated once here and handed to the template, so the page costs no second query.
            changelist.result_list = list(changelist.result_list)
            # The search term itself may be a name or an MRN, which do not belong in the trail.
            self.audit_shown(request, changelist.result_list, detail="search" if changelist.query else "list")
        return response

    def response_action(self, request, queryset):
        name = request.POST.get("action", "")
        if request.POST.get("select_across") == "1":
            targets = list(queryset)
        else:
            targets = list(queryset.filter(pk__in=request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)))
        response = super().response_action(request, queryset)
        if name == "delete_selected":
            # The confirmation page shows the records; the deletion itself is recorded by delete_queryset.
            if not request.POST.get("post"):
                self._audit_many(request, targets, AuditAction.READ, "delete confirmation")
        else:
            self._audit_many(request, targets, AuditAction.UPDATE, f"action {name}"[:255])
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and getattr(response, "status_code", None) == 200:
            obj = self.get_object(request, object_id)
            if obj is not None:
                self._audit(request, obj, AuditAction.READ)
        return response

    def history_view(self, request, object_id, extra_context=None):
        response = super().history_view(request, object_id, extra_context)
        if getattr(response, "status_code", None) == 200:
            obj = self.get_object(request, object_id)
            if obj is not None:
                self._audit(request, obj, AuditAction.READ, "history")
        return response

    def delete_view(self, request, object_id, extra_context=None):
        response = super().delete_view(request, object_id, extra_context)
        if request.method == "GET" and getattr(response, "status_code", None) == 200:
            obj = self.get_object(request, object_id)
            if obj is not None:
                self._audit(request, obj, AuditAction.READ, "delete confirmation")
        return response

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        changed = ",".join(sorted(form.changed_data))[:255] if form is not None else ""
        self._audit(request, obj, AuditAction.UPDATE if change else AuditAction.CREATE, detail=changed)

    # Recorded before the rows go. A patient seen in the admin is never deleted: the audit rows of
    # that viewing protect it, and the admin's delete page says so before getting here.
    def delete_model(self, request, obj):
        self._audit(request, obj, AuditAction.DELETE)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        self._audit_many(request, list(queryset), AuditAction.DELETE)
        super().delete_queryset(request, queryset)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Not audited itself: it shows who read what (ids, no names), to administrators only, and a
    row for every look at the trail would multiply it without telling anyone more."""

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
class HistoricalPatientAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    # No patient link: a history row may outlive its patient, and the trail must not point at nothing.
    list_display = ("history_date", "history_type", "history_user", "id", "mrn", "family_name", "given_name")
    list_filter = ("history_type", "history_date")
    search_fields = ("mrn", "=id", "history_user__username")
    readonly_fields = [field.name for field in HistoricalPatient._meta.fields]


@admin.register(HistoricalStudy)
class HistoricalStudyAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    list_display = ("history_date", "history_type", "history_user", "id", "accession_number", "status", "priority")
    list_filter = ("history_type", "history_date", "status")
    search_fields = ("accession_number", "=id", "=patient__id", "history_user__username")
    readonly_fields = [field.name for field in HistoricalStudy._meta.fields]
