"""API representations of studies and images, shared by several API views."""

from rest_framework import serializers

from api.links import api_url
from api.representation import datetime_text, time_zone_of
from imaging.models import Image, Study


class StudyOutputSerializer(serializers.ModelSerializer):
    """Needs ``select_related("patient")`` and the ``image_count`` annotation (see imaging.apis)."""

    mrn = serializers.CharField(source="patient.mrn", read_only=True)
    image_count = serializers.IntegerField(
        read_only=True, help_text="Images with pixels; non-image DICOM instances (SR, KOS, ...) are not counted."
    )

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

    def to_representation(self, obj: Study) -> dict:
        """What DRF builds from the fields above (tested equal), written out for the list pages."""
        zone = time_zone_of(self.fields["created_at"])
        return {
            "id": str(obj.id),
            "patient": obj.patient_id,
            "mrn": obj.patient.mrn,
            "accession_number": obj.accession_number,
            "study_instance_uid": obj.study_instance_uid,
            "modality": obj.modality,
            "body_part": obj.body_part,
            "procedure": obj.procedure,
            "description": obj.description,
            "study_date": obj.study_date.isoformat() if obj.study_date else None,
            "referring_physician": obj.referring_physician,
            "priority": obj.priority,
            "status": obj.status,
            "image_count": int(obj.image_count),
            "created_at": datetime_text(obj.created_at, zone),
            "updated_at": datetime_text(obj.updated_at, zone),
            "ai_completed_at": datetime_text(obj.ai_completed_at, zone),
        }


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
