from django.contrib import admin

from accounts.policy import PolicyAdminMixin, Resource
from audit.admin import AuditedAdminMixin
from imaging.models import Study
from patients.models import Patient


class StudyInline(PolicyAdminMixin, admin.TabularInline):
    policy_resource = Resource.STUDY
    model = Study
    extra = 0
    fields = ("accession_number", "modality", "body_part", "study_date", "priority", "status")
    readonly_fields = ("status",)
    show_change_link = True


@admin.register(Patient)
class PatientAdmin(AuditedAdminMixin, PolicyAdminMixin, admin.ModelAdmin):
    policy_resource = Resource.PATIENT
    list_display = ("mrn", "family_name", "given_name", "birth_date", "sex", "created_at")
    list_filter = ("sex",)
    search_fields = ("mrn", "family_name", "given_name")
    readonly_fields = ("id", "created_at", "updated_at", "created_by")
    inlines = [StudyInline]
