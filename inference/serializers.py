"""API representations of AI models, predictions and reviews, shared by several API views."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inference.models import AIModel, Prediction, Review
from medportal.api.urls import absolute_url

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
    review = serializers.SerializerMethodField()
    is_second_opinion = serializers.SerializerMethodField(help_text="Always true: an AI output is never a diagnosis.")
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
            "heatmap_url",
            "review",
            "is_second_opinion",
            "disclaimer",
        )

    @extend_schema_field({"type": "string", "nullable": True, "description": "Grad-CAM heatmap (PNG) download."})
    def get_heatmap_url(self, obj: Prediction) -> str | None:
        if not obj.heatmap:
            return None
        return absolute_url(self.context, reverse("prediction-heatmap", kwargs={"prediction_id": obj.id}))

    @extend_schema_field(ReviewSummarySerializer(allow_null=True))
    def get_review(self, obj: Prediction):
        try:
            review = obj.review
        except Review.DoesNotExist:
            return None
        return ReviewSummarySerializer(review).data

    def get_is_second_opinion(self, obj: Prediction) -> bool:
        return True

    def get_disclaimer(self, obj: Prediction) -> str:
        return SECOND_OPINION_DISCLAIMER


PREDICTION_RELATED = ("model", "image", "review__reviewer")
