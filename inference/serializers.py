"""API representations of AI models, predictions and reviews, shared by several API views."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.links import api_url
from api.representation import datetime_text, time_zone_of
from inference.dicom_report import has_report
from inference.models import AIModel, Prediction, PredictionStatus, Review
from inference.selectors import queue_status

SECOND_OPINION_DISCLAIMER = (
    "AI second opinion, not a diagnosis. Read it with its confidence and model version; a radiologist's review decides."
)


class AIModelSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = AIModel
        fields = ("id", "name", "version", "display_name")


class ReviewSummarySerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username", read_only=True)

    class Meta:
        model = Review
        fields = ("id", "decision", "final_label", "comment", "reviewer", "reviewed_at")


class PredictionOutputSerializer(serializers.ModelSerializer):
    """An AI second opinion. Needs ``select_related("model", "image", "review__reviewer")``."""

    study = serializers.UUIDField(source="image.study_id", read_only=True)
    model = AIModelSummarySerializer(read_only=True)
    probabilities = serializers.DictField(
        child=serializers.FloatField(), allow_null=True, read_only=True, help_text="Calibrated probability per label."
    )
    heatmap_url = serializers.SerializerMethodField()
    report_url = serializers.SerializerMethodField()
    review = serializers.SerializerMethodField()
    is_second_opinion = serializers.SerializerMethodField(help_text="Always true: an AI output is never a diagnosis.")
    expected_wait_seconds = serializers.SerializerMethodField(
        help_text="While queued or running: seconds until the AI queue reaches it at the recent pace; else null."
    )
    disclaimer = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = (
            "id",
            "image",
            "study",
            "model",
            "status",
            "label",
            "confidence",
            "probabilities",
            "is_abnormal",
            "error",
            "attempts",
            "queued_at",
            "started_at",
            "finished_at",
            "inference_ms",
            "expected_wait_seconds",
            "heatmap_url",
            "report_url",
            "review",
            "is_second_opinion",
            "disclaimer",
        )

    def to_representation(self, obj: Prediction) -> dict:
        """What DRF builds field by field from the declarations above (tested equal), written out.

        A list of 100 results spent most of its serializer time in DRF's per-field machinery (source
        lookups, None checks, the time zone looked up again for each timestamp).
        """
        model = obj.model
        zone = time_zone_of(self.fields["queued_at"])
        probabilities = obj.probabilities
        return {
            "id": str(obj.id),
            "image": obj.image_id,
            "study": str(obj.image.study_id),
            "model": {
                "id": str(model.id),
                "name": model.name,
                "version": model.version,
                "display_name": model.display_name,
            },
            "status": obj.status,
            "label": obj.label,
            "confidence": None if obj.confidence is None else float(obj.confidence),
            "probabilities": None
            if probabilities is None
            else {str(k): None if v is None else float(v) for k, v in probabilities.items()},
            "is_abnormal": obj.is_abnormal,
            "error": obj.error,
            "attempts": obj.attempts,
            "queued_at": datetime_text(obj.queued_at, zone),
            "started_at": datetime_text(obj.started_at, zone),
            "finished_at": datetime_text(obj.finished_at, zone),
            "inference_ms": None if obj.inference_ms is None else float(obj.inference_ms),
            "expected_wait_seconds": self.get_expected_wait_seconds(obj),
            "heatmap_url": self.get_heatmap_url(obj),
            "report_url": self.get_report_url(obj),
            "review": self.get_review(obj),
            "is_second_opinion": self.get_is_second_opinion(obj),
            "disclaimer": self.get_disclaimer(obj),
        }

    @extend_schema_field({"type": "string", "nullable": True, "description": "Grad-CAM heatmap (PNG) download."})
    def get_heatmap_url(self, obj: Prediction) -> str | None:
        if not obj.heatmap:
            return None
        return api_url(self.context, "prediction-heatmap", prediction_id=obj.id)

    @extend_schema_field(
        {
            "type": "string",
            "nullable": True,
            "description": (
                "Once succeeded, or declined by the model (not run): the result or the reason no label "
                "was given as a DICOM Structured Report (application/dicom)."
            ),
        }
    )
    def get_report_url(self, obj: Prediction) -> str | None:
        if not has_report(obj):
            return None
        return api_url(self.context, "prediction-report", prediction_id=obj.id)

    @extend_schema_field(ReviewSummarySerializer(allow_null=True))
    def get_review(self, obj: Prediction):
        if obj.status != PredictionStatus.SUCCEEDED:
            return None  # only a finished second opinion is reviewed; no query for the others
        try:
            review = obj.review
        except Review.DoesNotExist:
            return None
        return ReviewSummarySerializer(review).data

    def get_is_second_opinion(self, obj: Prediction) -> bool:
        return True

    def get_disclaimer(self, obj: Prediction) -> str:
        return SECOND_OPINION_DISCLAIMER

    def get_expected_wait_seconds(self, obj: Prediction) -> float | None:
        if obj.status not in (PredictionStatus.QUEUED, PredictionStatus.RUNNING):
            return None
        # One look at the queue per response, however many predictions it lists.
        statuses = self.context.setdefault("queue_status", {}) if isinstance(self.context, dict) else {}
        if obj.model.queue not in statuses:
            statuses[obj.model.queue] = queue_status(queue=obj.model.queue)
        return statuses[obj.model.queue].expected_wait_seconds


class QueueStatusSerializer(serializers.Serializer):
    """The AI queue as an upload sees it (backpressure: uploads are always stored, the wait is shown)."""

    queue = serializers.CharField(allow_null=True)
    depth = serializers.IntegerField(help_text="Predictions queued or running.")
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    throughput_per_second = serializers.FloatField(help_text="Images per second the AI workers have been finishing.")
    expected_wait_seconds = serializers.FloatField(help_text="Time to work through the current queue.")
    soft_limit = serializers.IntegerField()
    over_limit = serializers.BooleanField(help_text="True when the queue is deeper than the configured limit.")
    message = serializers.CharField(help_text="A notice for users when the queue is over its limit, else empty.")


PREDICTION_RELATED = ("model", "image", "review__reviewer")
