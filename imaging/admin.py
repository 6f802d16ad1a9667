from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from accounts.policy import PolicyAdminMixin, Resource
from audit.admin import AuditedAdminMixin
from imaging.held import held_instance_file, held_instance_reject
from imaging.models import STUDY_IDENTITY_FIELDS, DicomPeer, HeldInstance, HoldStatus, Image, Study


class ImageInline(PolicyAdminMixin, admin.TabularInline):
    policy_resource = Resource.IMAGE
    model = Image
    extra = 0
    fields = ("original_filename", "content_type", "width", "height", "analysable", "uploaded_by", "uploaded_at")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # images arrive through the upload service, which validates and queues AI


@admin.register(Study)
class StudyAdmin(AuditedAdminMixin, PolicyAdminMixin, admin.ModelAdmin):
    policy_resource = Resource.STUDY
    audit_patient = staticmethod(lambda study: study.patient_id)
    list_display = (
        "accession_number", "patient", "modality", "body_part", "procedure", "priority", "status", "study_date",
        "created_at",
    )  # fmt: skip
    list_filter = ("status", "modality", "body_part", "priority", "procedure")
    search_fields = ("accession_number", "patient__mrn", "patient__family_name", "patient__given_name")
    list_select_related = ("patient",)
    autocomplete_fields = ("patient",)
    readonly_fields = ("id", "status", "ai_completed_at", "created_at", "updated_at", "created_by")
    date_hierarchy = "created_at"
    inlines = [ImageInline]

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if obj is not None and obj.images.exists():
            # Study.clean refuses it as well; read-only says so before anyone tries.
            return (*fields, *STUDY_IDENTITY_FIELDS)
        return fields


@admin.register(Image)
class ImageAdmin(AuditedAdminMixin, PolicyAdminMixin, admin.ModelAdmin):
    policy_resource = Resource.IMAGE
    audit_patient = staticmethod(lambda image: image.study.patient_id)
    list_display = ("__str__", "study", "content_type", "width", "height", "analysable", "source", "uploaded_at")
    list_filter = ("content_type", "source", "analysable")
    search_fields = ("study__accession_number", "study__patient__mrn", "original_filename", "sha256")
    list_select_related = ("study",)
    readonly_fields = [f.name for f in Image._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(DicomPeer)
class DicomPeerAdmin(AuditedAdminMixin, PolicyAdminMixin, admin.ModelAdmin):
    """The C-STORE receiver's allow-list. Audited like patient data: who let which node in is worth a trail."""

    policy_resource = Resource.DICOM_PEER
    list_display = ("ae_title", "network", "port", "description", "active", "updated_at")
    list_filter = ("active",)
    search_fields = ("ae_title", "network", "description")
    readonly_fields = ("created_at", "updated_at")


@admin.register(HeldInstance)
class HeldInstanceAdmin(AuditedAdminMixin, PolicyAdminMixin, admin.ModelAdmin):
    """Instances that named a patient on record but did not match them: an administrator files or rejects each."""

    policy_resource = Resource.HELD_INSTANCE
    audit_patient = staticmethod(lambda held: held.patient_id)
    list_display = ("received_at", "reason", "patient", "source", "peer", "uploaded_by", "status")
    list_filter = ("status", "reason", "source")
    search_fields = ("patient__mrn", "sop_instance_uid", "study_instance_uid", "peer")
    list_select_related = ("patient", "uploaded_by")
    # The file is not offered for download here: the media storage is not served, nor would a download be audited.
    exclude = ("file",)
    readonly_fields = [f.name for f in HeldInstance._meta.fields if f.name != "file"]
    actions = ["file_under_patient", "reject_and_delete"]

    def has_add_permission(self, request) -> bool:
        return False  # instances are held by the intake, never made by hand

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # rejecting deletes the file and keeps the record of what happened

    def _each(self, request, queryset, service, done: str) -> None:
        count = 0
        for held in queryset.filter(status=HoldStatus.HELD):
            try:
                service(held=held, user=request.user)
                count += 1
            except ValidationError as exc:
                self.message_user(request, f"{held}: {' '.join(exc.messages)}", messages.ERROR)
        if count:
            self.message_user(request, f"{count} held instance(s) {done}.", messages.SUCCESS)

    @admin.action(description="File under the patient on record (confirmed the same person)")
    def file_under_patient(self, request, queryset):
        self._each(request, queryset, held_instance_file, "filed under their patient")

    @admin.action(description="Reject and delete the file")
    def reject_and_delete(self, request, queryset):
        self._each(request, queryset, held_instance_reject, "rejected; their files were deleted")
