"""WADO-RS: retrieve the original instances, their metadata and their frames."""

from django.http import HttpResponse
from pydicom.encaps import generate_frames
from pydicom.pixels import pixel_array

from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.dicom.parsing import read_dataset
from imaging.dicomweb.base import DicomWebView
from imaging.dicomweb.dicom_json import dicom_json_response, metadata_json
from imaging.dicomweb.multipart import build_multipart_related
from imaging.dicomweb.selectors import dicom_instances, dicom_study_get
from imaging.models import Image
from imaging.storage import blob_read


def _part_type(image: Image) -> str:
    return f"{DICOM_CONTENT_TYPE}; transfer-syntax={image.transfer_syntax_uid}"


class RetrieveApi(DicomWebView):
    """GET /dicomweb/studies/{study}[/series/{series}[/instances/{instance}]]: the original instances."""

    def get(self, request, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None):
        study = dicom_study_get(study_uid=study_uid)
        if study is None:
            return HttpResponse("No such study.", status=404, content_type="text/plain")
        images = list(dicom_instances(study=study, series_uid=series_uid, instance_uid=instance_uid))
        if not images:
            return HttpResponse("No such instances.", status=404, content_type="text/plain")
        accept = request.META.get("HTTP_ACCEPT", "")
        if accept and "application/dicom" not in accept and "*/*" not in accept and "multipart/related" not in accept:
            return HttpResponse(
                'Instances are sent as multipart/related; type="application/dicom".',
                status=406,
                content_type="text/plain",
            )
        body, content_type = build_multipart_related(
            [(_part_type(image), blob_read(image.file.name)) for image in images], root_type=DICOM_CONTENT_TYPE
        )
        return HttpResponse(body, content_type=content_type)


class MetadataApi(DicomWebView):
    """GET .../metadata: the instances' attributes as DICOM JSON, bulk data by reference."""

    def get(self, request, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None):
        study = dicom_study_get(study_uid=study_uid)
        if study is None:
            return HttpResponse("No such study.", status=404, content_type="text/plain")
        images = list(dicom_instances(study=study, series_uid=series_uid, instance_uid=instance_uid))
        if not images:
            return HttpResponse("No such instances.", status=404, content_type="text/plain")
        return dicom_json_response(
            [metadata_json(request, image=image, dataset=read_dataset(blob_read(image.file.name))) for image in images]
        )


class FramesApi(DicomWebView):
    """GET .../instances/{instance}/frames/{list}: frame pixel data (uncompressed, or the original bitstream)."""

    def get(self, request, study_uid: str, series_uid: str, instance_uid: str, frames: str):
        study = dicom_study_get(study_uid=study_uid)
        image = None
        if study is not None:
            image = dicom_instances(study=study, series_uid=series_uid, instance_uid=instance_uid).first()
        if image is None:
            return HttpResponse("No such instance.", status=404, content_type="text/plain")
        try:
            numbers = [int(number) for number in frames.split(",")]
        except ValueError:
            return HttpResponse("Frame numbers must be integers.", status=400, content_type="text/plain")
        if any(number < 1 or number > image.number_of_frames for number in numbers):
            return HttpResponse("No such frame.", status=404, content_type="text/plain")
        dataset = read_dataset(blob_read(image.file.name))
        syntax = dataset.file_meta.TransferSyntaxUID
        parts = []
        if syntax.is_compressed:
            encoded = list(generate_frames(dataset.PixelData, number_of_frames=image.number_of_frames))
            parts = [(f"application/octet-stream; transfer-syntax={syntax}", encoded[n - 1]) for n in numbers]
        else:
            for number in numbers:
                array = pixel_array(dataset, index=number - 1, raw=True)
                parts.append(("application/octet-stream", array.astype(array.dtype.newbyteorder("<")).tobytes()))
        body, content_type = build_multipart_related(parts, root_type="application/octet-stream")
        return HttpResponse(body, content_type=content_type)
