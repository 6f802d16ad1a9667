"""WADO-RS: retrieve instances (in the transfer syntax asked for), their metadata, frames and bulk data."""

from collections.abc import Iterator

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import HttpResponse, StreamingHttpResponse
from pydicom import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels import pixel_array
from pydicom.tag import Tag

from accounts.policy import Act, Resource, allowed_roles
from audit.access import audit_access
from audit.models import AuditAction
from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.dicom.parsing import read_dataset
from imaging.dicom.selectors import dicom_instance_header, dicom_instances, dicom_study_get
from imaging.dicomweb.base import DicomWebView, dicom_audit_rows
from imaging.dicomweb.dicom_json import dicom_json_response, metadata_json
from imaging.dicomweb.multipart import multipart_related_stream
from imaging.dicomweb.negotiation import (
    LOSSLESS_TARGETS,
    OCTET_STREAM,
    NotAcceptable,
    accepted,
    frame_syntax,
    has_file_meta,
    instance_syntax,
    part10_bytes,
    sent_syntax,
)
from imaging.models import Image
from imaging.storage import blob_read

_CHUNK = 1024 * 1024


def _text(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain")


def _file_chunks(name: str) -> Iterator[bytes]:
    with default_storage.open(name, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def _head(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read(132)


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


def _instance_part(image: Image, target: str) -> tuple[str, Iterator[bytes] | list[bytes]]:
    """One instance as a multipart part: streamed untouched when it already is what was asked for."""
    syntax = sent_syntax(target, stored=image.transfer_syntax_uid, has_pixels=image.has_pixels)
    if syntax == image.transfer_syntax_uid and has_file_meta(_head(image.file.name)):
        return f"{DICOM_CONTENT_TYPE}; transfer-syntax={syntax}", _file_chunks(image.file.name)
    # Re-encoded (or given the file meta it was received without) one instance at a time.
    return f"{DICOM_CONTENT_TYPE}; transfer-syntax={syntax}", [part10_bytes(blob_read(image.file.name), target=syntax)]


def frame_parts(
    dataset: Dataset, numbers: list[int], number_of_frames: int, *, media_type: str
) -> Iterator[tuple[str, list[bytes]]]:
    """Frames as multipart parts: the stored bitstream with its media type, or decoded little-endian octets."""
    syntax = dataset.file_meta.TransferSyntaxUID
    for number in numbers:
        if media_type != OCTET_STREAM:
            frame = get_frame(dataset.PixelData, number - 1, number_of_frames=number_of_frames)
            yield f"{media_type}; transfer-syntax={syntax}", [frame]
        else:
            array = pixel_array(dataset, index=number - 1, raw=True)
            data = array.astype(array.dtype.newbyteorder("<")).tobytes()
            yield f"{OCTET_STREAM}; transfer-syntax=1.2.840.10008.1.2.1", [data]


class _InstancesView(DicomWebView):
    required_roles = {"GET": allowed_roles(Resource.IMAGE, Act.READ)}

    def instances(self, study_uid: str, series_uid: str | None, instance_uid: str | None) -> list[Image] | None:
        study = dicom_study_get(study_uid=study_uid)
        if study is None:
            return None
        return list(dicom_instances(study=study, series_uid=series_uid, instance_uid=instance_uid)) or None


class RetrieveApi(_InstancesView):
    """GET /dicomweb/studies/{study}[/series/{series}[/instances/{instance}]]: the instances as Part 10 files."""

    def get(self, request, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None):
        images = self.instances(study_uid, series_uid, instance_uid)
        if images is None:
            return _text("No such instances.", 404)
        try:
            target = instance_syntax(
                accepted(request.META.get("HTTP_ACCEPT", "")),
                [(image.transfer_syntax_uid, image.has_pixels) for image in images],
            )
        except NotAcceptable as exc:
            return _text(str(exc), 406)
        parts = (_instance_part(image, target) for image in images)
        if target in LOSSLESS_TARGETS:
            # Compression can still fail on an unusual image: find out before the 200 is sent.
            try:
                parts = [(content_type, [b"".join(chunks)]) for content_type, chunks in parts]
            except Exception as exc:  # each encoder plugin raises its own types
                return _text(f"The instances cannot be compressed to {target}: {exc}", 406)
        audit_access(request, action=AuditAction.DOWNLOAD, rows=dicom_audit_rows(images), detail="WADO-RS instances")
        body, content_type = multipart_related_stream(parts, root_type=DICOM_CONTENT_TYPE)
        return StreamingHttpResponse(body, content_type=content_type)


class MetadataApi(_InstancesView):
    """GET .../metadata: the instances' attributes as DICOM JSON, bulk data by BulkDataURI."""

    def get(self, request, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None):
        images = self.instances(study_uid, series_uid, instance_uid)
        if images is None:
            return _text("No such instances.", 404)
        audit_access(request, action=AuditAction.READ, rows=dicom_audit_rows(images), detail="WADO-RS metadata")
        # Each header is read up to its pixel data, never the pixels: a viewer asks for a whole series at once.
        return dicom_json_response(
            [metadata_json(request, image=image, dataset=dicom_instance_header(image=image)) for image in images]
        )


class FramesApi(_InstancesView):
    """GET .../instances/{instance}/frames/{list}: frame pixel data, as stored or decoded."""

    def get(self, request, study_uid: str, series_uid: str, instance_uid: str, frames: str):
        images = self.instances(study_uid, series_uid, instance_uid)
        if images is None:
            return _text("No such instance.", 404)
        [image] = images
        try:
            numbers = frame_numbers(frames)
        except ValueError as exc:
            return _text(str(exc), 400)
        if not image.has_pixels or any(number < 1 or number > image.number_of_frames for number in numbers):
            return _text("No such frame.", 404)
        dataset = read_dataset(blob_read(image.file.name))
        try:
            media_type, _ = frame_syntax(
                accepted(request.META.get("HTTP_ACCEPT", "")), stored=dataset.file_meta.TransferSyntaxUID
            )
        except NotAcceptable as exc:
            return _text(str(exc), 406)
        audit_access(request, action=AuditAction.DOWNLOAD, rows=dicom_audit_rows([image]), detail="WADO-RS frames")
        body, content_type = multipart_related_stream(
            frame_parts(dataset, numbers, image.number_of_frames, media_type=media_type), root_type=media_type
        )
        return StreamingHttpResponse(body, content_type=content_type)


def _element_at(dataset: Dataset, path: str):
    """The element a BulkDataURI path names: tags and item indexes, e.g. 00540016/0/00181072."""
    steps = path.strip("/").split("/")
    current = dataset
    try:
        for position in range(0, len(steps) - 1, 2):
            current = current[Tag(steps[position])].value[int(steps[position + 1])]
        return current[Tag(steps[-1])]
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        return None


class BulkDataApi(_InstancesView):
    """GET .../instances/{instance}/bulkdata/{path}: one binary value a metadata BulkDataURI points at."""

    def get(self, request, study_uid: str, series_uid: str, instance_uid: str, path: str):
        images = self.instances(study_uid, series_uid, instance_uid)
        if images is None:
            return _text("No such instance.", 404)
        [image] = images
        dataset = read_dataset(blob_read(image.file.name))
        element = _element_at(dataset, path)
        if element is None or not isinstance(element.value, bytes):
            return _text("No such bulk data.", 404)
        entries = accepted(request.META.get("HTTP_ACCEPT", ""))
        if element.tag == 0x7FE00010:
            # Pixel data are sent frame by frame, negotiated as for the frames resource.
            try:
                media_type, _ = frame_syntax(entries, stored=dataset.file_meta.TransferSyntaxUID)
            except NotAcceptable as exc:
                return _text(str(exc), 406)
            numbers = list(range(1, image.number_of_frames + 1))
            parts = frame_parts(dataset, numbers, image.number_of_frames, media_type=media_type)
        else:
            if not any(entry.media_type in (OCTET_STREAM, "*/*", "application/*") for entry in entries):
                return _text("Bulk data are sent as application/octet-stream.", 406)
            media_type, parts = OCTET_STREAM, [(OCTET_STREAM, [element.value])]
        audit_access(request, action=AuditAction.DOWNLOAD, rows=dicom_audit_rows([image]), detail="WADO-RS bulkdata")
        body, content_type = multipart_related_stream(parts, root_type=media_type)
        return StreamingHttpResponse(body, content_type=content_type)
