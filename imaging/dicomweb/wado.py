"""WADO-RS: retrieve the original instances, their metadata and their frames."""

from collections.abc import Iterator

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import HttpResponse, StreamingHttpResponse
from pydicom import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels import pixel_array

from accounts.policy import Act, Resource, allowed_roles
from audit.access import audit_access
from audit.models import AuditAction
from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.dicom.parsing import read_dataset
from imaging.dicom.selectors import dicom_instances, dicom_study_get
from imaging.dicomweb.base import DicomWebView, dicom_audit_rows
from imaging.dicomweb.dicom_json import dicom_json_response, metadata_json
from imaging.dicomweb.multipart import multipart_related_stream
from imaging.models import Image
from imaging.storage import blob_read

_CHUNK = 1024 * 1024


def _part_type(image: Image) -> str:
    return f"{DICOM_CONTENT_TYPE}; transfer-syntax={image.transfer_syntax_uid}"


def _file_chunks(name: str) -> Iterator[bytes]:
    with default_storage.open(name, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def frame_numbers(frames: str) -> list[int]:
    """The requested frame numbers, in the order asked, each once; ValueError says what is wrong.

    Checked before anything is read: a list longer than the cap is refused, whatever it repeats.
    """
    entries = frames.split(",")
    limit = settings.MEDPORTAL_DICOMWEB_MAX_FRAMES
    if len(entries) > limit:
        raise ValueError(f"At most {limit} frame numbers can be asked for at once; ask in several requests.")
    try:
        numbers = [int(entry) for entry in entries]
    except ValueError:
        raise ValueError("Frame numbers must be integers.") from None
    return list(dict.fromkeys(numbers))


def _frame_parts(dataset: Dataset, numbers: list[int], number_of_frames: int) -> Iterator[tuple[str, list[bytes]]]:
    # One frame is extracted or decoded as its part is sent.
    syntax = dataset.file_meta.TransferSyntaxUID
    for number in numbers:
        if syntax.is_compressed:
            frame = get_frame(dataset.PixelData, number - 1, number_of_frames=number_of_frames)
            yield f"application/octet-stream; transfer-syntax={syntax}", [frame]
        else:
            array = pixel_array(dataset, index=number - 1, raw=True)
            yield "application/octet-stream", [array.astype(array.dtype.newbyteorder("<")).tobytes()]


class RetrieveApi(DicomWebView):
    """GET /dicomweb/studies/{study}[/series/{series}[/instances/{instance}]]: the original instances."""

    required_roles = {"GET": allowed_roles(Resource.IMAGE, Act.READ)}

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
        audit_access(request, action=AuditAction.DOWNLOAD, rows=dicom_audit_rows(images), detail="WADO-RS instances")
        # Each instance is read from storage chunk by chunk as the response is sent.
        body, content_type = multipart_related_stream(
            ((_part_type(image), _file_chunks(image.file.name)) for image in images), root_type=DICOM_CONTENT_TYPE
        )
        return StreamingHttpResponse(body, content_type=content_type)


class MetadataApi(DicomWebView):
    """GET .../metadata: the instances' attributes as DICOM JSON, bulk data by reference."""

    required_roles = {"GET": allowed_roles(Resource.IMAGE, Act.READ)}

    def get(self, request, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None):
        study = dicom_study_get(study_uid=study_uid)
        if study is None:
            return HttpResponse("No such study.", status=404, content_type="text/plain")
        images = list(dicom_instances(study=study, series_uid=series_uid, instance_uid=instance_uid))
        if not images:
            return HttpResponse("No such instances.", status=404, content_type="text/plain")
        audit_access(request, action=AuditAction.READ, rows=dicom_audit_rows(images), detail="WADO-RS metadata")
        return dicom_json_response(
            [metadata_json(request, image=image, dataset=read_dataset(blob_read(image.file.name))) for image in images]
        )


class FramesApi(DicomWebView):
    """GET .../instances/{instance}/frames/{list}: frame pixel data (uncompressed, or the original bitstream)."""

    required_roles = {"GET": allowed_roles(Resource.IMAGE, Act.READ)}

    def get(self, request, study_uid: str, series_uid: str, instance_uid: str, frames: str):
        study = dicom_study_get(study_uid=study_uid)
        image = None
        if study is not None:
            image = dicom_instances(study=study, series_uid=series_uid, instance_uid=instance_uid).first()
        if image is None:
            return HttpResponse("No such instance.", status=404, content_type="text/plain")
        try:
            numbers = frame_numbers(frames)
        except ValueError as exc:
            return HttpResponse(str(exc), status=400, content_type="text/plain")
        if any(number < 1 or number > image.number_of_frames for number in numbers):
            return HttpResponse("No such frame.", status=404, content_type="text/plain")
        audit_access(request, action=AuditAction.DOWNLOAD, rows=dicom_audit_rows([image]), detail="WADO-RS frames")
        dataset = read_dataset(blob_read(image.file.name))
        body, content_type = multipart_related_stream(
            _frame_parts(dataset, numbers, image.number_of_frames), root_type="application/octet-stream"
        )
        return StreamingHttpResponse(body, content_type=content_type)
