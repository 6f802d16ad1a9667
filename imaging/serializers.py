"""API representations of studies and images, shared by several API views."""

from rest_framework import serializers

from api.links import api_url
from imaging.models import Image, Study


class StudyOutputSerializer(serializers.ModelSerializer):
    """Needs ``select_related("patient")`` and the ``image_count`` annotation (see imaging.apis)."""

    mrn = serializers.CharField(source="patient.mrn", read_only=True)
    image_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Study
        fields = (
            "id",
            "patient",
            "mrn",
            "accession_number",
            "study_instance_uid",
            "modality",
            "body_part",
            "procedure",
            "description",
            "study_date",
            "referring_physician",
            "priority",
            "status",
            "image_count",
            "created_at",
            "updated_at",
            "ai_completed_at",
        )


class ImageOutputSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()
    render_url = serializers.SerializerMethodField(
        help_text="The image as PNG, windowed as the AI sees it (DICOM included); add ?size=N for a thumbnail."
    )

    class Meta:
        model = Image
        fields = (
            "id",
            "study",
            "sha256",
            "size_bytes",
            "content_type",
            "width",
            "height",
            "original_filename",
            "uploaded_at",
            "source",
            "sop_instance_uid",
            "analysable",
            "not_analysable_reason",
            "download_url",
            "render_url",
        )

    def get_download_url(self, obj: Image) -> str:
        return api_url(self.context, "image-file", image_id=obj.id)

    def get_render_url(self, obj: Image) -> str:
        return api_url(self.context, "image-render", image_id=obj.id)
