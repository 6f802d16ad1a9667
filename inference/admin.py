from django.contrib import admin, messages

from accounts.policy import PolicyAdminMixin, Resource
from audit.admin import AuditedAdminMixin
from imaging.admin import ImageAdmin, StudyAdmin
from imaging.models import Image, Study
from inference.models import (
    AIModel,
    AIModelStatus,
    Prediction,
    PredictionReport,
    PredictionStatus,
    Review,
    ReviewAmendment,
)
from inference.reports import prediction_reports_store
from inference.services import aimodel_activate, aimodel_retire, predictions_rerun


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "display_name", "body_part", "modality_list", "status", "queue", "created_at")
    list_filter = ("status", "body_part", "name")
    search_fields = ("name", "display_name", "version", "weights_sha256")
    readonly_fields = [f.name for f in AIModel._meta.fields if f.name not in ("display_name", "queue")]
    actions = ["retire", "activate", "rerun_past_images"]

    @admin.display(description="Modalities")
    def modality_list(self, obj: AIModel) -> str:
        return ", ".join(obj.modalities)

    def has_add_permission(self, request) -> bool:
        return False  # registered from weights + card by `manage.py register_model`

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # predictions must keep pointing at the exact version that made them

    @admin.action(description="Retire: route no new studies to the selected versions")
    def retire(self, request, queryset) -> None:
        for model in queryset:
            aimodel_retire(model=model)
        self.message_user(request, f"Retired {queryset.count()} model version(s).")

    @admin.action(description="Activate the selected version (retires other versions of the same model)")
    def activate(self, request, queryset) -> None:
        if queryset.values("name").distinct().count() != queryset.count():
            self.message_user(request, "Select at most one version per model.", level=messages.ERROR)
            return
        for model in queryset:
            aimodel_activate(model=model)
        self.message_user(request, f"Activated {queryset.count()} model version(s).")

    @admin.action(description="Run the selected active versions on every past image they apply to")
    def rerun_past_images(self, request, queryset) -> None:
        total = 0
        for model in queryset.filter(status=AIModelStatus.ACTIVE):
            images = Image.objects.filter(
                analysable=True,
                study__body_part=model.body_part,
                study__modality__in=model.modalities,
            ).select_related("study")
            if model.procedure:
                images = images.filter(study__procedure=model.procedure)
            total += len(predictions_rerun(images=images, model=model))
        self.message_user(request, f"Queued {total} AI second opinion(s).")


class ReviewInline(PolicyAdminMixin, admin.StackedInline):
    policy_resource = Resource.REVIEW
    model = Review
    extra = 0
    can_delete = False
    readonly_fields = ("decision", "final_label", "comment", "reviewer", "reviewed_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class PredictionReportInline(admin.TabularInline):
    """The revisions of the result stored into its DICOM study as SR, and why any could not be."""

    model = PredictionReport
    extra = 0
    fields = ("revision", "sop_instance_uid", "image", "error", "attempted_at")
    readonly_fields = fields
    can_delete = False
    verbose_name = "DICOM SR stored into the study"
    verbose_name_plural = "DICOM SRs stored into the study"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Prediction)
class PredictionAdmin(AuditedAdminMixin, PolicyAdminMixin, admin.ModelAdmin):
    """AI outputs are read-only; failed ones can be queued again."""

    policy_resource = Resource.PREDICTION
    audit_patient = staticmethod(lambda prediction: prediction.image.study.patient_id)
    list_display = ("id", "model", "status", "label", "confidence", "attempts", "queued_at", "finished_at", "study")
    list_filter = ("status", "model__name", "is_abnormal")
    search_fields = ("image__study__accession_number", "image__study__patient__mrn", "label", "error")
    list_select_related = ("model", "image__study")
    readonly_fields = [f.name for f in Prediction._meta.fields]
    date_hierarchy = "queued_at"
    inlines = [ReviewInline, PredictionReportInline]
    actions = ["requeue_failed", "store_reports"]

    @admin.display(description="Study")
    def study(self, obj: Prediction) -> str:
        return obj.image.study.accession_number

    def has_add_permission(self, request) -> bool:
        return False  # queued by the services for a stored image, never typed in

    @admin.action(description="Re-queue the selected failed predictions")
    def requeue_failed(self, request, queryset) -> None:
        failed = queryset.filter(status=PredictionStatus.FAILED).select_related("model", "image__study")
        queued = 0
        for prediction in failed:
            queued += len(predictions_rerun(images=[prediction.image], model=prediction.model))
        self.message_user(request, f"Re-queued {queued} failed prediction(s).")

    @admin.action(description="Store the current DICOM SR of the selected results into their studies")
    def store_reports(self, request, queryset) -> None:
        # For a report that could not be stored when its result or review was saved; never stored twice.
        records = prediction_reports_store(prediction_ids=queryset.values_list("id", flat=True))
        stored = sum(1 for record in records if record.image_id)
        self.message_user(request, f"{stored} report(s) in their studies, {len(records) - stored} failed.")


class ReviewAmendmentInline(admin.TabularInline):
    """The decisions a review replaced: history, so nobody adds, changes or deletes it here."""

    model = ReviewAmendment
    extra = 0
    fields = (
        "previous_decision",
        "previous_final_label",
        "previous_comment",
        "previous_reviewed_at",
        "reason",
        "amended_by",
        "amended_at",
    )
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Review)
class ReviewAdmin(AuditedAdminMixin, PolicyAdminMixin, admin.ModelAdmin):
    """A radiologist's review is part of the record: read-only here, and never deleted (accounts.policy).
    Only its radiologist amends it (on the review page or the API), which keeps the earlier decision."""

    policy_resource = Resource.REVIEW
    audit_patient = staticmethod(lambda review: review.prediction.image.study.patient_id)
    list_display = ("prediction", "decision", "final_label", "reviewer", "reviewed_at")
    list_filter = ("decision", "prediction__model__name")
    search_fields = ("prediction__image__study__accession_number", "final_label", "comment", "reviewer__username")
    list_select_related = ("prediction__model", "prediction__image__study", "reviewer")
    readonly_fields = ("prediction", "decision", "final_label", "comment", "reviewer", "reviewed_at")
    inlines = [ReviewAmendmentInline]

    def has_add_permission(self, request) -> bool:
        return False  # written on the review page, by the radiologist reading the study

    def has_change_permission(self, request, obj=None) -> bool:
        # Amended only by the radiologist who made it, with a reason, on the review page (may_amend_review).
        return False


# The imaging admin pages know nothing of AI; inference registers them again with its results and
# actions added.


class PredictionInline(PolicyAdminMixin, admin.TabularInline):
    """AI outputs are read-only: they are what a model version said, not something to edit."""

    policy_resource = Resource.PREDICTION
    model = Prediction
    fk_name = "image"
    extra = 0
    fields = ("model", "status", "label", "confidence", "error", "attempts", "finished_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class StudyWithAIAdmin(StudyAdmin):
    actions = [*StudyAdmin.actions, "rerun_ai"]

    @admin.action(description="Re-run AI on every image of the selected studies")
    def rerun_ai(self, request, queryset) -> None:
        images = Image.objects.filter(study__in=queryset, analysable=True).select_related("study")
        queued = predictions_rerun(images=images)
        self.message_user(request, f"Queued {len(queued)} AI second opinion(s).")


class ImageWithAIAdmin(ImageAdmin):
    inlines = [*ImageAdmin.inlines, PredictionInline]


for _model, _model_admin in ((Study, StudyWithAIAdmin), (Image, ImageWithAIAdmin)):
    admin.site.unregister(_model)
    admin.site.register(_model, _model_admin)
