from pathlib import PurePath

from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.generics import get_object_or_404
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.roles import READERS, STAFF
from api.exceptions import ImageRejectedError
from api.mixins import AuditedListApi, audit_api
from audit.models import AuditAction, AuditInterface
from audit.services import audit_record_many
from imaging.dicom.render import MAX_RENDER_SIZE, image_display_png
from imaging.filters import ImageFilter, StudyFilter
from imaging.intake import Batch, IncomingFile, IntakeRejected, files_intake
from imaging.models import BodyPart, Image, ImageSource, Modality, Priority, Procedure, Study
from imaging.serializers import ImageOutputSerializer, StudyOutputSerializer
from imaging.services import study_create, study_update
from inference.models import Prediction
from inference.selectors import queue_status
from inference.serializers import PREDICTION_RELATED, PredictionOutputSerializer, QueueStatusSerializer
from inference.services import predictions_rerun
from patients.models import Patient

RERUN_ROLES = READERS


def study_queryset():
    return Study.objects.select_related("patient").with_image_count().order_by("-created_at", "id")


class StudyListApi(AuditedListApi):
    """Imaging studies. Staff register them; every clinical role reads them."""

    required_roles = {"GET": READERS, "POST": STAFF}
    serializer_class = StudyOutputSerializer
    filterset_class = StudyFilter

    class InputSerializer(serializers.Serializer):
        patient = serializers.PrimaryKeyRelatedField(queryset=Patient.objects.all())
        accession_number = serializers.CharField(max_length=64)
        modality = serializers.ChoiceField(choices=Modality.choices)
        body_part = serializers.ChoiceField(choices=BodyPart.choices)
        procedure = serializers.ChoiceField(choices=Procedure.choices, required=False, default=Procedure.GENERAL)
        description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
        study_date = serializers.DateField(required=False, allow_null=True, default=None)
        referring_physician = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
        priority = serializers.ChoiceField(choices=Priority.choices, required=False, default=Priority.ROUTINE)
        study_instance_uid = serializers.CharField(max_length=64, required=False, allow_null=True, default=None)

    def get_queryset(self):
        return study_queryset()

    @staticmethod
    def audit_patient(row: Study):
        return row.patient_id

    @extend_schema(summary="List studies")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Register a study for a patient",
        request=InputSerializer,
        responses={status.HTTP_201_CREATED: StudyOutputSerializer},
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        study = study_create(**serializer.validated_data, created_by=request.user)
        audit_api(request, action=AuditAction.CREATE, obj=study, patient=study.patient_id)
        study = study_queryset().get(id=study.id)
        return Response(StudyOutputSerializer(study).data, status=status.HTTP_201_CREATED)


class StudyDetailApi(APIView):
    required_roles = {"GET": READERS, "PATCH": STAFF}

    class InputSerializer(serializers.Serializer):
        accession_number = serializers.CharField(max_length=64, required=False)
        modality = serializers.ChoiceField(choices=Modality.choices, required=False)
        body_part = serializers.ChoiceField(choices=BodyPart.choices, required=False)
        procedure = serializers.ChoiceField(choices=Procedure.choices, required=False)
        description = serializers.CharField(max_length=255, required=False, allow_blank=True)
        study_date = serializers.DateField(required=False, allow_null=True)
        referring_physician = serializers.CharField(max_length=120, required=False, allow_blank=True)
        priority = serializers.ChoiceField(choices=Priority.choices, required=False)

    @extend_schema(summary="Read a study", responses=StudyOutputSerializer)
    def get(self, request, study_id):
        study = get_object_or_404(study_queryset(), id=study_id)
        audit_api(request, action=AuditAction.READ, obj=study, patient=study.patient_id)
        return Response(StudyOutputSerializer(study).data)

    @extend_schema(summary="Correct a study's details", request=InputSerializer, responses=StudyOutputSerializer)
    def patch(self, request, study_id):
        study = get_object_or_404(Study.objects.select_for_update(), id=study_id)
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        study = study_update(study=study, **serializer.validated_data)
        audit_api(
            request,
            action=AuditAction.UPDATE,
            obj=study,
            patient=study.patient_id,
            detail=",".join(sorted(serializer.validated_data)),
        )
        return Response(StudyOutputSerializer(get_object_or_404(study_queryset(), id=study.id)).data)


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

    required_roles = {"GET": READERS, "POST": STAFF}
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
        audit_record_many(
            actor=request.user,
            action=AuditAction.CREATE,
            items=[(result.image, study.patient_id) for result in results if result.created],
            interface=AuditInterface.API,
            request=request,
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


class ImageListApi(AuditedListApi):
    required_roles = {"GET": READERS}
    serializer_class = ImageOutputSerializer
    filterset_class = ImageFilter
    queryset = Image.objects.select_related("study")

    @staticmethod
    def audit_patient(row: Image):
        return row.study.patient_id

    @extend_schema(summary="List images")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ImageDetailApi(APIView):
    required_roles = {"GET": READERS}

    @extend_schema(summary="Read an image's details", responses=ImageOutputSerializer)
    def get(self, request, image_id):
        image = get_object_or_404(Image.objects.select_related("study"), id=image_id)
        audit_api(request, action=AuditAction.READ, obj=image, patient=image.study.patient_id)
        return Response(ImageOutputSerializer(image, context={"request": request}).data)


class ImageFileApi(APIView):
    required_roles = {"GET": READERS}

    @extend_schema(
        summary="Download an image file",
        responses={
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The file as uploaded."),
            (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="The file as uploaded."),
            (200, "application/dicom"): OpenApiResponse(OpenApiTypes.BINARY, description="The file as uploaded."),
        },
    )
    def get(self, request, image_id):
        image = get_object_or_404(Image.objects.select_related("study"), id=image_id)
        audit_api(request, action=AuditAction.DOWNLOAD, obj=image, patient=image.study.patient_id)
        extension = PurePath(image.file.name).suffix
        # The stored name is content-addressed; the uploader's filename is never used as a path.
        return FileResponse(
            _open_stored(image.file.name),
            content_type=image.content_type,
            as_attachment=True,
            filename=f"{image.id}{extension}",
        )


class ImageRenderApi(APIView):
    """The image as PNG, windowed as the AI sees it (DICOM included), as the review page shows it."""

    required_roles = {"GET": READERS}

    class InputSerializer(serializers.Serializer):
        size = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=MAX_RENDER_SIZE,
            help_text="Bound the longer side to this many pixels (a thumbnail); the full image without it.",
        )

    @extend_schema(
        summary="Render an image as PNG",
        parameters=[InputSerializer],
        responses={(200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The rendering.")},
    )
    def get(self, request, image_id):
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        size = query.validated_data.get("size")
        image = get_object_or_404(Image.objects.select_related("study"), id=image_id)
        if size is None:
            # The full image is recorded like any download; thumbnails are not (as on the pages).
            audit_api(request, action=AuditAction.DOWNLOAD, obj=image, patient=image.study.patient_id)
        try:
            png = image_display_png(image, max_size=size)
        except FileNotFoundError as exc:
            # The record outlived its file (e.g. storage restored from an older backup): not a server fault.
            raise exceptions.NotFound("The stored file is not available.") from exc
        response = HttpResponse(png, content_type="image/png")
        # An image's content never changes after upload.
        response["Cache-Control"] = "private, max-age=86400"
        return response


class RerunOutputSerializer(serializers.Serializer):
    queued = PredictionOutputSerializer(many=True, help_text="Predictions queued by this request.")


def _rerun_response(request, queued: list[Prediction]) -> Response:
    predictions = Prediction.objects.filter(id__in=[p.id for p in queued]).select_related(*PREDICTION_RELATED)
    data = {"queued": PredictionOutputSerializer(predictions, many=True, context={"request": request}).data}
    return Response(data, status=status.HTTP_202_ACCEPTED)


class StudyRerunApi(APIView):
    """Queue AI again for every image of a study: models that have not read an image yet, and failed runs."""

    required_roles = {"POST": RERUN_ROLES}

    @extend_schema(summary="Re-run AI on a study", request=None, responses={202: RerunOutputSerializer})
    def post(self, request, study_id):
        study = get_object_or_404(Study, id=study_id)
        queued = predictions_rerun(images=list(study.images.select_related("study")))
        audit_api(request, action=AuditAction.UPDATE, obj=study, patient=study.patient_id, detail="rerun")
        return _rerun_response(request, queued)


class ImageRerunApi(APIView):
    """Queue AI again for one image: models that have not read it yet, and failed runs."""

    required_roles = {"POST": RERUN_ROLES}

    @extend_schema(summary="Re-run AI on an image", request=None, responses={202: RerunOutputSerializer})
    def post(self, request, image_id):
        image = get_object_or_404(Image.objects.select_related("study"), id=image_id)
        queued = predictions_rerun(images=[image])
        audit_api(request, action=AuditAction.UPDATE, obj=image, patient=image.study.patient_id, detail="rerun")
        return _rerun_response(request, queued)


def _open_stored(name: str):
    try:
        return default_storage.open(name, "rb")
    except FileNotFoundError as exc:
        # The record outlived its file (e.g. storage restored from an older backup): not a server fault.
        raise exceptions.NotFound("The stored file is not available.") from exc
