from pathlib import PurePath

from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.policy import Act, Resource, allowed_roles
from api.mixins import AuditedListApi
from audit.access import audit_access, audited
from audit.models import AuditAction, AuditInterface
from imaging.dicom.render import MAX_RENDER_SIZE, NotAnImage, image_display_png
from imaging.filters import ImageFilter, StudyFilter
from imaging.models import BodyPart, Image, Modality, Priority, Procedure, Study
from imaging.serializers import ImageOutputSerializer, StudyOutputSerializer
from imaging.services import study_create, study_update
from patients.models import Patient


def study_queryset():
    return Study.objects.select_related("patient").with_image_count().order_by("-created_at", "id")


class StudyListApi(AuditedListApi):
    """Imaging studies. Staff register them; every clinical role reads them."""

    required_roles = {
        "GET": allowed_roles(Resource.STUDY, Act.SEARCH),
        "POST": allowed_roles(Resource.STUDY, Act.WRITE),
    }
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
        audit_access(request, action=AuditAction.CREATE, obj=study, patient=study.patient_id)
        study = study_queryset().get(id=study.id)
        return Response(StudyOutputSerializer(study).data, status=status.HTTP_201_CREATED)


@audited(AuditInterface.API)
class StudyDetailApi(APIView):
    required_roles = {"GET": allowed_roles(Resource.STUDY, Act.READ), "PATCH": allowed_roles(Resource.STUDY, Act.WRITE)}

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
        audit_access(request, action=AuditAction.READ, obj=study, patient=study.patient_id)
        return Response(StudyOutputSerializer(study).data)

    @extend_schema(summary="Correct a study's details", request=InputSerializer, responses=StudyOutputSerializer)
    def patch(self, request, study_id):
        study = get_object_or_404(Study.objects.select_for_update(), id=study_id)
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        study = study_update(study=study, **serializer.validated_data)
        audit_access(
            request,
            action=AuditAction.UPDATE,
            obj=study,
            patient=study.patient_id,
            detail=",".join(sorted(serializer.validated_data)),
        )
        return Response(StudyOutputSerializer(get_object_or_404(study_queryset(), id=study.id)).data)


class ImageListApi(AuditedListApi):
    required_roles = {"GET": allowed_roles(Resource.IMAGE, Act.SEARCH)}
    serializer_class = ImageOutputSerializer
    filterset_class = ImageFilter
    queryset = Image.objects.select_related("study")

    @staticmethod
    def audit_patient(row: Image):
        return row.study.patient_id

    @extend_schema(summary="List images")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


@audited(AuditInterface.API)
class ImageDetailApi(APIView):
    required_roles = {"GET": allowed_roles(Resource.IMAGE, Act.READ)}

    @extend_schema(summary="Read an image's details", responses=ImageOutputSerializer)
    def get(self, request, image_id):
        image = get_object_or_404(Image.objects.select_related("study"), id=image_id)
        audit_access(request, action=AuditAction.READ, obj=image, patient=image.study.patient_id)
        return Response(ImageOutputSerializer(image, context={"request": request}).data)


@audited(AuditInterface.API)
class ImageFileApi(APIView):
    required_roles = {"GET": allowed_roles(Resource.IMAGE, Act.READ)}

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
        audit_access(request, action=AuditAction.DOWNLOAD, obj=image, patient=image.study.patient_id)
        extension = PurePath(image.file.name).suffix
        # The stored name is content-addressed; the uploader's filename is never used as a path.
        return FileResponse(
            _open_stored(image.file.name),
            content_type=image.content_type,
            as_attachment=True,
            filename=f"{image.id}{extension}",
        )


@audited(AuditInterface.API)
class ImageRenderApi(APIView):
    """The image as PNG, windowed as the AI sees it (DICOM included), as the review page shows it."""

    required_roles = {"GET": allowed_roles(Resource.IMAGE, Act.READ)}

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
        responses={
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The rendering."),
            409: OpenApiResponse(description="A non-image DICOM instance (SR, KOS, PDF, ...): nothing to render."),
        },
    )
    def get(self, request, image_id):
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        size = query.validated_data.get("size")
        image = get_object_or_404(Image.objects.select_related("study"), id=image_id)
        if size is None:
            # The full image is recorded like any download; thumbnails are not (as on the pages).
            audit_access(request, action=AuditAction.DOWNLOAD, obj=image, patient=image.study.patient_id)
        try:
            png = image_display_png(image, max_size=size)
        except NotAnImage as exc:
            return HttpResponse(str(exc), status=status.HTTP_409_CONFLICT, content_type="text/plain; charset=utf-8")
        except FileNotFoundError as exc:
            # The record outlived its file (e.g. storage restored from an older backup): not a server fault.
            raise exceptions.NotFound("The stored file is not available.") from exc
        response = HttpResponse(png, content_type="image/png")
        # An image's content never changes after upload.
        response["Cache-Control"] = "private, max-age=86400"
        return response


def _open_stored(name: str):
    try:
        return default_storage.open(name, "rb")
    except FileNotFoundError as exc:
        # The record outlived its file (e.g. storage restored from an older backup): not a server fault.
        raise exceptions.NotFound("The stored file is not available.") from exc
