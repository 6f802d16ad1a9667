"""API endpoints on imaging records that answer with their AI second opinions.

They live here, not in imaging, because they compose both apps: an upload answers with the
second opinions its images were given, and a re-run queues new ones. imaging knows nothing of AI.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import get_object_or_404
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.policy import Act, Resource, allowed_roles
from api.exceptions import ImageRejectedError
from api.mixins import AuditedListApi
from audit.access import audit_access, audited
from audit.models import AuditAction, AuditInterface
from imaging.intake import Batch, IncomingFile, IntakeRejected, files_intake
from imaging.models import Image, ImageSource, Study
from imaging.serializers import ImageOutputSerializer
from inference.models import Prediction
from inference.selectors import queue_status
from inference.serializers import PREDICTION_RELATED, PredictionOutputSerializer, QueueStatusSerializer
from inference.services import predictions_rerun


class UploadedImageSerializer(ImageOutputSerializer):
    created = serializers.BooleanField(help_text="False when the same file was already in this study.")
    predictions = PredictionOutputSerializer(many=True, help_text="The AI second opinions queued for it.")

    class Meta(ImageOutputSerializer.Meta):
        fields = (*ImageOutputSerializer.Meta.fields, "created", "predictions")


class UploadOutputSerializer(serializers.Serializer):
    images = UploadedImageSerializer(many=True)
    queue = QueueStatusSerializer(help_text="The AI queue after this upload: depth and expected wait.")


class StudyImagesApi(AuditedListApi):
    """The images of one study, and uploading more (PNG, JPEG or DICOM; several ``file`` parts at once)."""

    required_roles = {
        "GET": allowed_roles(Resource.IMAGE, Act.SEARCH),
        "POST": allowed_roles(Resource.IMAGE, Act.WRITE),
    }
    serializer_class = ImageOutputSerializer
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        file = serializers.ListField(
            child=serializers.FileField(),
            help_text=(
                "One or more image files (repeat the part): PNG, JPEG or DICOM within the size and pixel limits. "
                "A DICOM file must name the study's patient."
            ),
        )

    def get_study(self) -> Study:
        return get_object_or_404(Study, id=self.kwargs["study_id"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Image.objects.none()
        return Image.objects.filter(study_id=self.kwargs["study_id"]).select_related("study")

    @staticmethod
    def audit_patient(row: Image):
        return row.study.patient_id

    @extend_schema(summary="List a study's images")
    def get(self, request, *args, **kwargs):
        self.get_study()
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Upload images to a study",
        description=(
            "Each new image gets one queued AI second opinion per active model for the study's modality, "
            "body part and procedure. 201 when at least one file was new, 200 when every file was already "
            "in the study. A rejected file (not PNG, JPEG or DICOM, corrupt, too large, too many pixels, a DICOM "
            "file of another patient) rejects the whole request with 400 and stores nothing."
        ),
        request={"multipart/form-data": InputSerializer},
        responses={status.HTTP_201_CREATED: UploadOutputSerializer, status.HTTP_200_OK: UploadOutputSerializer},
    )
    def post(self, request, study_id):
        study = self.get_study()
        files = request.FILES.getlist("file")
        if not files:
            raise serializers.ValidationError({"file": ["No file was submitted."]})
        try:
            results = files_intake(
                files=[IncomingFile.from_upload(uploaded) for uploaded in files],
                source=ImageSource.UPLOAD,
                uploaded_by=request.user,
                study=study,
                batch=Batch.ALL_OR_NOTHING,
            )
        except IntakeRejected as exc:
            raise ImageRejectedError(detail={"file": [f"{exc.filename}: {exc}"]}) from exc
        predictions_by_image = {r.image.id: r.followups for r in results if r.followups is not None}
        known = [result.image for result in results if result.image.id not in predictions_by_image]
        if known:
            for prediction in Prediction.objects.filter(image__in=known).select_related(*PREDICTION_RELATED):
                predictions_by_image.setdefault(prediction.image_id, []).append(prediction)
        audit_access(
            request,
            action=AuditAction.CREATE,
            rows=[(result.image, study.patient_id) for result in results if result.created],
            detail="upload",
        )
        context = {"request": request}
        images = ImageOutputSerializer([result.image for result in results], many=True, context=context).data
        predictions = PredictionOutputSerializer(many=True, context=context)
        data = {
            "images": [
                {
                    **image,
                    "created": result.created,
                    "predictions": predictions.to_representation(predictions_by_image.get(result.image.id, [])),
                }
                for image, result in zip(images, results, strict=True)
            ],
            "queue": queue_status().as_dict(),
        }
        any_created = any(result.created for result in results)
        return Response(data, status=status.HTTP_201_CREATED if any_created else status.HTTP_200_OK)


class RerunOutputSerializer(serializers.Serializer):
    queued = PredictionOutputSerializer(many=True, help_text="Predictions queued by this request.")


def _rerun_response(request, queued: list[Prediction]) -> Response:
    predictions = Prediction.objects.filter(id__in=[p.id for p in queued]).select_related(*PREDICTION_RELATED)
    data = {"queued": PredictionOutputSerializer(predictions, many=True, context={"request": request}).data}
    return Response(data, status=status.HTTP_202_ACCEPTED)


@audited(AuditInterface.API)
class StudyRerunApi(APIView):
    """Queue AI again for every image of a study: models that have not read an image yet, and failed runs."""

    required_roles = {"POST": allowed_roles(Resource.PREDICTION, Act.WRITE)}

    @extend_schema(summary="Re-run AI on a study", request=None, responses={202: RerunOutputSerializer})
    def post(self, request, study_id):
        study = get_object_or_404(Study, id=study_id)
        queued = predictions_rerun(images=list(study.images.select_related("study")))
        audit_access(request, action=AuditAction.UPDATE, obj=study, patient=study.patient_id, detail="rerun")
        return _rerun_response(request, queued)


@audited(AuditInterface.API)
class ImageRerunApi(APIView):
    """Queue AI again for one image: models that have not read it yet, and failed runs."""

    required_roles = {"POST": allowed_roles(Resource.PREDICTION, Act.WRITE)}

    @extend_schema(summary="Re-run AI on an image", request=None, responses={202: RerunOutputSerializer})
    def post(self, request, image_id):
        image = get_object_or_404(Image.objects.select_related("study"), id=image_id)
        queued = predictions_rerun(images=[image])
        audit_access(request, action=AuditAction.UPDATE, obj=image, patient=image.study.patient_id, detail="rerun")
        return _rerun_response(request, queued)
