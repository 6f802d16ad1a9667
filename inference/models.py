import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from imaging.models import BodyPart, Image, Procedure


class AIModelStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class AIModelQuerySet(models.QuerySet):
    def active(self) -> "AIModelQuerySet":
        return self.filter(status=AIModelStatus.ACTIVE)


class AIModel(models.Model):
    """One exact version of a CNN, as registered from its weights file and model card."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.SlugField(max_length=64, help_text="Stable name across versions, e.g. cxr-pneumonia.")
    version = models.CharField(max_length=32)
    display_name = models.CharField(max_length=120)
    task = models.CharField(max_length=32, default="classification")
    modalities = models.JSONField(help_text='DICOM modality codes this model reads, e.g. ["CR", "DX"].')
    body_part = models.CharField(max_length=16, choices=BodyPart.choices)
    procedure = models.CharField(
        max_length=32,
        choices=Procedure.choices,
        blank=True,
        default=Procedure.GENERAL,
        help_text="Empty: any study of this modality and body part. Otherwise only studies asking this question.",
    )
    labels = models.JSONField(help_text="Class labels in the order of the model's outputs.")
    normal_labels = models.JSONField(
        null=True,
        blank=True,
        help_text="Labels that mean 'nothing abnormal'; null when the task has no such notion.",
    )
    input_height = models.PositiveIntegerField()
    input_width = models.PositiveIntegerField()
    color_mode = models.CharField(max_length=16, choices=[("grayscale", "Grayscale"), ("rgb", "RGB")])
    preprocessing = models.JSONField(default=dict, blank=True)
    temperature = models.FloatField(default=1.0, help_text="Calibration temperature fitted on validation data.")
    gradcam_layer = models.CharField(max_length=128, blank=True)
    weights = models.FileField(max_length=255)
    weights_sha256 = models.CharField(max_length=64)
    card = models.JSONField(default=dict, blank=True, help_text="The full model card.")
    metrics = models.JSONField(default=dict, blank=True)
    queue = models.CharField(
        max_length=64,
        default="gpu",
        help_text="Celery queue its predictions run on (heavy models may get their own).",
    )
    status = models.CharField(max_length=16, choices=AIModelStatus.choices, default=AIModelStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    objects = AIModelQuerySet.as_manager()

    class Meta:
        ordering = ["name", "-created_at"]
        verbose_name = "AI model"
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="aimodel_unique_version"),
            models.CheckConstraint(condition=Q(status__in=AIModelStatus.values), name="aimodel_status_valid"),
            models.CheckConstraint(condition=Q(temperature__gt=0), name="aimodel_temperature_positive"),
        ]
        indexes = [models.Index(fields=["status", "body_part"])]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.input_height, self.input_width)

    def applies_to(self, *, modality: str, body_part: str, procedure: str) -> bool:
        return (
            modality in self.modalities
            and body_part == self.body_part
            and (not self.procedure or self.procedure == procedure)
        )


class PredictionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


# A model that declines an image (too small, or unlike its training images) records why under
# this prefix: the image was not read, which is not a fault of the worker or of the model.
NOT_RUN_PREFIX = "Not run:"


class Prediction(models.Model):
    """An AI second opinion: one image read by one exact model version."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="predictions")
    model = models.ForeignKey(AIModel, on_delete=models.PROTECT, related_name="predictions")
    # Copied from the study when the result is queued, so the list filters by modality from its own
    # index instead of joining image and study for every row. It cannot drift: a study's modality is
    # part of its identity and cannot change once it has images (STUDY_IDENTITY_FIELDS).
    study_modality = models.CharField(max_length=8, editable=False, help_text="The study's modality.")
    status = models.CharField(max_length=16, choices=PredictionStatus.choices, default=PredictionStatus.QUEUED)
    # Set in the transaction that records the review (reviews are never deleted), so "reviewed"
    # results are listed from their own index: reviews land on older results than the newest
    # ones, and an EXISTS walked the whole newer history to fill a page.
    reviewed = models.BooleanField(default=False, editable=False, help_text="Whether a radiologist reviewed it.")
    label = models.CharField(max_length=128, blank=True)
    confidence = models.FloatField(null=True, blank=True, help_text="Calibrated probability of the label.")
    probabilities = models.JSONField(null=True, blank=True, help_text="Every class's calibrated probability.")
    is_abnormal = models.BooleanField(null=True, blank=True)
    heatmap = models.FileField(max_length=255, blank=True, help_text="Grad-CAM heatmap, 8-bit PNG.")
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claim_token = models.UUIDField(
        null=True,
        blank=True,
        editable=False,
        help_text="Set by the worker that claimed it; results from any other claim are discarded.",
    )
    worker_host = models.CharField(max_length=255, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="When a task was last sent for it.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    inference_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["queued_at"]
        constraints = [
            models.UniqueConstraint(fields=["image", "model"], name="prediction_unique_image_model"),
            models.CheckConstraint(condition=Q(status__in=PredictionStatus.values), name="prediction_status_valid"),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True) | Q(confidence__gte=0, confidence__lte=1),
                name="prediction_confidence_range",
            ),
            models.CheckConstraint(
                condition=~Q(status=PredictionStatus.SUCCEEDED)
                | (Q(confidence__isnull=False) & ~Q(label="") & Q(probabilities__isnull=False)),
                name="prediction_succeeded_has_result",
            ),
            models.CheckConstraint(
                condition=~Q(status=PredictionStatus.FAILED) | ~Q(error=""),
                name="prediction_failed_has_reason",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "model", "queued_at"]),
            models.Index(fields=["status", "enqueued_at"]),
            # The list's order and its common filters in that order.
            models.Index(fields=["queued_at", "id"], name="prediction_queued"),
            models.Index(fields=["status", "queued_at", "id"], name="prediction_status_queued"),
            models.Index(fields=["status", "finished_at"], name="prediction_status_finished"),
            models.Index(fields=["finished_at"], name="prediction_finished"),
            models.Index(fields=["model", "queued_at"], name="prediction_model_queued"),
            models.Index(fields=["study_modality", "queued_at", "id"], name="prediction_modality_queued"),
            models.Index(fields=["queued_at", "id"], condition=Q(reviewed=True), name="prediction_reviewed_queued"),
            # The worklist's AI flag: each backlog study's abnormal results, image by image, answered
            # from the index alone (the confidence and the id the review check needs are in it).
            models.Index(
                fields=["image", "confidence", "id"],
                condition=Q(status="succeeded", is_abnormal=True),
                name="prediction_abnormal_image",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} on {self.image_id}: {self.status}"

    @property
    def not_run(self) -> bool:
        """Declined by the model's own checks rather than failed."""
        return self.status == PredictionStatus.FAILED and self.error.startswith(NOT_RUN_PREFIX)


class ReviewDecision(models.TextChoices):
    AGREE = "agree", "Agree"
    OVERRIDE = "override", "Override"


class Review(models.Model):
    """A radiologist's verdict on one AI second opinion."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    prediction = models.OneToOneField(Prediction, on_delete=models.PROTECT, related_name="review")
    decision = models.CharField(max_length=16, choices=ReviewDecision.choices)
    final_label = models.CharField(max_length=128)
    comment = models.TextField(blank=True)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    reviewed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-reviewed_at"]
        constraints = [
            models.CheckConstraint(condition=Q(decision__in=ReviewDecision.values), name="review_decision_valid"),
            models.CheckConstraint(condition=~Q(final_label=""), name="review_final_label_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()}: {self.final_label}"


class ReviewAmendment(models.Model):
    """An earlier state of a review that its radiologist corrected, with the reason. The review
    holds the current decision; its amendments, oldest first, hold every decision it replaced."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    review = models.ForeignKey(Review, on_delete=models.PROTECT, related_name="amendments")
    previous_decision = models.CharField(max_length=16, choices=ReviewDecision.choices)
    previous_final_label = models.CharField(max_length=128)
    previous_comment = models.TextField(blank=True)
    previous_reviewed_at = models.DateTimeField(help_text="When the replaced decision was made.")
    reason = models.TextField(help_text="Why the radiologist corrected the review.")
    amended_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    amended_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["amended_at"]
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="review_amendment_reason_not_empty"),
        ]

    def __str__(self) -> str:
        return f"Was {self.get_previous_decision_display()}: {self.previous_final_label}"


class PredictionReport(models.Model):
    """One revision of an AI second opinion stored into its DICOM study as a Structured Report.

    Revision 1 is the AI's result; each saved or amended review makes the next. A failed attempt
    keeps its reason here (and the prediction stands); a later attempt for the revision fills in
    the instance.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    prediction = models.ForeignKey(Prediction, on_delete=models.PROTECT, related_name="reports")
    revision = models.PositiveSmallIntegerField()
    sop_instance_uid = models.CharField(max_length=64)
    image = models.ForeignKey(
        Image, on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="The stored SR instance."
    )
    error = models.TextField(blank=True, help_text="Why the report could not be stored, when it could not.")
    attempted_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["prediction", "revision"]
        constraints = [
            models.UniqueConstraint(fields=["prediction", "revision"], name="predictionreport_unique_revision"),
            models.CheckConstraint(condition=Q(revision__gte=1), name="predictionreport_revision_positive"),
        ]

    def __str__(self) -> str:
        return f"Report {self.revision} of {self.prediction_id}"
