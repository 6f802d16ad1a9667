from pathlib import PurePath

from django.core.files.storage import default_storage
from django.db.models import Prefetch
from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.generics import ListAPIView, get_object_or_404
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.policy import Act, Resource, allowed_roles
from accounts.roles import ADMINS, READERS
from api.exceptions import ConflictError
from api.links import api_url
from api.mixins import AuditedListApi
from api.schema import ErrorSerializer
from audit.access import audit_access, audit_exempt, audited
from audit.models import AuditAction, AuditInterface
from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.serializers import StudyOutputSerializer
from inference.dicom_report import has_report, prediction_sr_bytes, sr_filename
from inference.filters import AIModelFilter, PredictionFilter, ReviewFilter, WorklistFilter
from inference.models import AIModel, Prediction, Review, ReviewAmendment, ReviewDecision
from inference.selectors import studies_worklist
from inference.serializers import PREDICTION_RELATED, PredictionOutputSerializer
from inference.services import aimodel_activate, aimodel_retire, review_amend, review_create

# --- Predictions ------------------------------------------------------------------------------


def prediction_queryset():
    return Prediction.objects.select_related(*PREDICTION_RELATED, "image__study")


# A list shows each result's model by name and version; its card, labels, metrics and settings
# (JSON decoded for every row, the card several kilobytes) are left in the database.
PREDICTION_LIST_MODEL_DEFERRED = tuple(
    f"model__{field}"
    for field in ("modalities", "labels", "normal_labels", "preprocessing", "weights", "card", "metrics")
)


class PredictionListApi(AuditedListApi):
    """AI second opinions. Each carries its confidence, every class probability and the exact model version."""

    required_roles = {"GET": allowed_roles(Resource.PREDICTION, Act.SEARCH)}
    serializer_class = PredictionOutputSerializer
    filterset_class = PredictionFilter

    def get_queryset(self):
        return prediction_queryset().defer(*PREDICTION_LIST_MODEL_DEFERRED)

    @staticmethod
    def audit_patient(row: Prediction):
        return row.image.study.patient_id

    @extend_schema(summary="List AI second opinions")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


@audited(AuditInterface.API)
class PredictionDetailApi(APIView):
    required_roles = {"GET": allowed_roles(Resource.PREDICTION, Act.READ)}

    @extend_schema(summary="Read an AI second opinion", responses=PredictionOutputSerializer)
    def get(self, request, prediction_id):
        prediction = get_object_or_404(prediction_queryset(), id=prediction_id)
        audit_access(request, action=AuditAction.READ, obj=prediction, patient=prediction.image.study.patient_id)
        return Response(PredictionOutputSerializer(prediction, context={"request": request}).data)


@audited(AuditInterface.API)
class PredictionHeatmapApi(APIView):
    required_roles = {"GET": allowed_roles(Resource.PREDICTION, Act.READ)}

    @extend_schema(
        summary="Download the Grad-CAM heatmap of an AI second opinion",
        responses={(200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="8-bit PNG heatmap.")},
    )
    def get(self, request, prediction_id):
        prediction = get_object_or_404(prediction_queryset(), id=prediction_id)
        if not prediction.heatmap:
            raise exceptions.NotFound("This result has no heatmap.")
        audit_access(request, action=AuditAction.DOWNLOAD, obj=prediction, patient=prediction.image.study.patient_id)
        return FileResponse(
            _open_stored(prediction.heatmap.name),
            content_type="image/png",
            as_attachment=True,
            filename=f"{prediction.id}-heatmap{PurePath(prediction.heatmap.name).suffix}",
        )


@audited(AuditInterface.API)
class PredictionReportApi(APIView):
    required_roles = {"GET": allowed_roles(Resource.PREDICTION, Act.READ)}

    @extend_schema(
        summary="Download an AI second opinion as a DICOM Structured Report",
        responses={
            (200, DICOM_CONTENT_TYPE): OpenApiResponse(
                OpenApiTypes.BINARY,
                description=(
                    "Comprehensive SR filed under the original patient and study, with the model version; "
                    "for an image the model declined, the reason no label was given."
                ),
            ),
            409: OpenApiResponse(ErrorSerializer, description="Neither a result nor a refusal (yet)."),
        },
    )
    def get(self, request, prediction_id):
        prediction = get_object_or_404(
            Prediction.objects.select_related("image__study__patient", "model"), id=prediction_id
        )
        if not has_report(prediction):
            raise ConflictError("Only a finished AI second opinion or a model's refusal has a report.")
        audit_access(
            request,
            action=AuditAction.DOWNLOAD,
            obj=prediction,
            patient=prediction.image.study.patient_id,
            detail="DICOM SR",
        )
        response = HttpResponse(prediction_sr_bytes(prediction=prediction), content_type=DICOM_CONTENT_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{sr_filename(prediction)}"'
        return response


# --- AI models ------------------------------------------------------------------------------


class AIModelOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = AIModel
        fields = (
            "id",
            "name",
            "version",
            "display_name",
            "task",
            "modalities",
            "body_part",
            "procedure",
            "labels",
            "normal_labels",
            "input_height",
            "input_width",
            "color_mode",
            "temperature",
            "metrics",
            "card",
            "status",
            "created_at",
            "retired_at",
        )


@audit_exempt("AI model versions, no patient data")
class AIModelListApi(ListAPIView):
    """Registered AI model versions. Everyone reads them; only admins activate or retire them."""

    required_roles = {"GET": READERS}
    serializer_class = AIModelOutputSerializer
    filterset_class = AIModelFilter
    queryset = AIModel.objects.all()

    @extend_schema(summary="List AI models")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


@audit_exempt("an AI model version, no patient data")
class AIModelDetailApi(APIView):
    required_roles = {"GET": READERS}

    @extend_schema(summary="Read an AI model version", responses=AIModelOutputSerializer)
    def get(self, request, model_id):
        model = get_object_or_404(AIModel, id=model_id)
        return Response(AIModelOutputSerializer(model).data)


@audit_exempt("changes an AI model version, no patient data")
class AIModelActivateApi(APIView):
    required_roles = {"POST": ADMINS}

    @extend_schema(
        summary="Activate an AI model version",
        description="New images are routed to it; other versions of the same model are retired.",
        request=None,
        responses=AIModelOutputSerializer,
    )
    def post(self, request, model_id):
        model = get_object_or_404(AIModel.objects.select_for_update(), id=model_id)
        return Response(AIModelOutputSerializer(aimodel_activate(model=model)).data)


@audit_exempt("changes an AI model version, no patient data")
class AIModelRetireApi(APIView):
    required_roles = {"POST": ADMINS}

    @extend_schema(
        summary="Retire an AI model version",
        description="No new images are routed to it; its past results keep pointing at it.",
        request=None,
        responses=AIModelOutputSerializer,
    )
    def post(self, request, model_id):
        model = get_object_or_404(AIModel.objects.select_for_update(), id=model_id)
        return Response(AIModelOutputSerializer(aimodel_retire(model=model)).data)


# --- Reviews --------------------------------------------------------------------------------


class ReviewAmendmentSerializer(serializers.ModelSerializer):
    """A decision the review replaced: what it was, since when, and who changed it when and why."""

    amended_by = serializers.CharField(source="amended_by.username", read_only=True)

    class Meta:
        model = ReviewAmendment
        fields = (
            "id",
            "previous_decision",
            "previous_final_label",
            "previous_comment",
            "previous_reviewed_at",
            "reason",
            "amended_by",
            "amended_at",
        )


class ReviewOutputSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username", read_only=True)
    image = serializers.UUIDField(source="prediction.image_id", read_only=True)
    study = serializers.UUIDField(source="prediction.image.study_id", read_only=True)
    ai_label = serializers.CharField(source="prediction.label", read_only=True)
    ai_confidence = serializers.FloatField(source="prediction.confidence", read_only=True, allow_null=True)
    amendments = ReviewAmendmentSerializer(
        many=True, read_only=True, help_text="The decisions this review replaced, oldest first; empty if never amended."
    )
    amendments_url = serializers.SerializerMethodField()

    class Meta:
        model = Review
        fields = (
            "id",
            "prediction",
            "image",
            "study",
            "ai_label",
            "ai_confidence",
            "decision",
            "final_label",
            "comment",
            "reviewer",
            "reviewed_at",
            "amendments",
            "amendments_url",
        )

    @extend_schema_field({"type": "string", "description": "The review's history; its reviewer amends it there."})
    def get_amendments_url(self, obj: Review) -> str:
        return api_url(self.context, "review-amendments", review_id=obj.id)


def review_queryset():
    return Review.objects.select_related("reviewer", "prediction__image__study").prefetch_related(
        Prefetch("amendments", queryset=ReviewAmendment.objects.select_related("amended_by"))
    )


class ReviewListApi(AuditedListApi):
    """Radiologists' verdicts on AI second opinions. Only radiologists write them."""

    required_roles = {
        "GET": allowed_roles(Resource.REVIEW, Act.SEARCH),
        "POST": allowed_roles(Resource.REVIEW, Act.WRITE),
    }
    serializer_class = ReviewOutputSerializer
    filterset_class = ReviewFilter

    class InputSerializer(serializers.Serializer):
        prediction = serializers.PrimaryKeyRelatedField(queryset=Prediction.objects.select_related("image"))
        decision = serializers.ChoiceField(choices=ReviewDecision.choices)
        final_label = serializers.CharField(
            max_length=128, required=False, allow_blank=True, default="", help_text="Required to override."
        )
        comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)

    def get_queryset(self):
        return review_queryset()

    @staticmethod
    def audit_patient(row: Review):
        return row.prediction.image.study.patient_id

    @extend_schema(summary="List reviews")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Review an AI second opinion",
        request=InputSerializer,
        responses={status.HTTP_201_CREATED: ReviewOutputSerializer},
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        review = review_create(reviewer=request.user, **serializer.validated_data)
        review = review_queryset().get(id=review.id)
        audit_access(request, action=AuditAction.CREATE, obj=review, patient=review.prediction.image.study.patient_id)
        return Response(
            ReviewOutputSerializer(review, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


@audited(AuditInterface.API)
class ReviewDetailApi(APIView):
    required_roles = {"GET": allowed_roles(Resource.REVIEW, Act.READ)}

    @extend_schema(summary="Read a review", responses=ReviewOutputSerializer)
    def get(self, request, review_id):
        review = get_object_or_404(review_queryset(), id=review_id)
        audit_access(request, action=AuditAction.READ, obj=review, patient=review.prediction.image.study.patient_id)
        return Response(ReviewOutputSerializer(review, context={"request": request}).data)


@audited(AuditInterface.API)
class ReviewAmendmentsApi(APIView):
    """A review's history. Only the radiologist who made the review amends it (accounts.policy), with
    a reason; the decision it replaces stays in this list and in the audit trail."""

    required_roles = {
        "GET": allowed_roles(Resource.REVIEW, Act.READ),
        "POST": allowed_roles(Resource.REVIEW, Act.WRITE),
    }

    class InputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=ReviewDecision.choices)
        final_label = serializers.CharField(
            max_length=128, required=False, allow_blank=True, default="", help_text="Required to override."
        )
        comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)
        reason = serializers.CharField(max_length=4000, help_text="Why the review is corrected; kept in its history.")

    @extend_schema(summary="List the earlier decisions of a review", responses=ReviewAmendmentSerializer(many=True))
    def get(self, request, review_id):
        review = get_object_or_404(review_queryset(), id=review_id)
        audit_access(
            request,
            action=AuditAction.READ,
            obj=review,
            patient=review.prediction.image.study.patient_id,
            detail="amendments",
        )
        return Response(ReviewAmendmentSerializer(review.amendments.all(), many=True).data)

    @extend_schema(
        summary="Amend your own review",
        description="Replaces the review's decision; the earlier one is kept in its amendments with the reason. "
        "Only the radiologist who made the review may amend it.",
        request=InputSerializer,
        responses={
            status.HTTP_201_CREATED: ReviewOutputSerializer,
            403: OpenApiResponse(ErrorSerializer, description="Not a radiologist, or not the review's author."),
        },
    )
    def post(self, request, review_id):
        review = get_object_or_404(Review, id=review_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        review_amend(review=review, user=request.user, **serializer.validated_data)
        review = review_queryset().get(id=review.id)
        audit_access(
            request,
            action=AuditAction.UPDATE,
            obj=review,
            patient=review.prediction.image.study.patient_id,
            detail=f"review amended: {serializer.validated_data['reason'].strip()}"[:255],
        )
        return Response(
            ReviewOutputSerializer(review, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


# --- Worklist -------------------------------------------------------------------------------


class WorklistStudySerializer(StudyOutputSerializer):
    ai_flagged = serializers.BooleanField(
        read_only=True, help_text="An unreviewed AI second opinion flags it abnormal with high confidence."
    )
    ai_top_confidence = serializers.FloatField(
        read_only=True, allow_null=True, help_text="Highest confidence among its unreviewed abnormal AI results."
    )

    class Meta(StudyOutputSerializer.Meta):
        fields = (*StudyOutputSerializer.Meta.fields, "ai_flagged", "ai_top_confidence")

    def to_representation(self, obj) -> dict:
        top = obj.ai_top_confidence
        return {
            **super().to_representation(obj),
            "ai_flagged": bool(obj.ai_flagged),
            "ai_top_confidence": None if top is None else float(top),
        }


class WorklistApi(AuditedListApi):
    """Studies awaiting review in triage order: priority, then AI-flagged abnormal, then oldest (as the pages)."""

    required_roles = {"GET": allowed_roles(Resource.STUDY, Act.SEARCH)}
    serializer_class = WorklistStudySerializer
    filterset_class = WorklistFilter

    def get_queryset(self):
        return studies_worklist()

    @staticmethod
    def audit_patient(row):
        return row.patient_id

    @extend_schema(summary="The radiologists' worklist")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


def _open_stored(name: str):
    try:
        return default_storage.open(name, "rb")
    except FileNotFoundError as exc:
        # The record outlived its file (e.g. storage restored from an older backup): not a server fault.
        raise exceptions.NotFound("The stored file is not available.") from exc
