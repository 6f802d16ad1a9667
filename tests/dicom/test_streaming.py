"""Bounded memory: exports and WADO-RS stream, frame lists are capped, the pixel budget counts everything."""

import io
import tracemalloc
import zipfile

import numpy as np
import pytest
from django.http import StreamingHttpResponse
from PIL import Image as PILImage
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from imaging.dicom.parsing import dicom_parse
from imaging.dicom.services import dicom_ingest
from imaging.dicomweb.multipart import parse_multipart_related
from imaging.models import ImageSource, Study
from imaging.validation import ImageRejected, decode_image, pixel_limit_check
from tests.dicom.support import dataset_bytes

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MB = 1024 * 1024


def ct_dataset(*, study_uid: str, series_uid: str, rows: int, columns: int, frames: int = 1, seed: int = 0):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = CT_IMAGE_STORAGE
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.PatientID = "STREAM-0001"
    dataset.PatientName = "Stream^Test"
    dataset.StudyInstanceUID = study_uid
    dataset.SeriesInstanceUID = series_uid
    dataset.Modality = "CT"
    dataset.BurnedInAnnotation = "NO"
    dataset.Rows, dataset.Columns = rows, columns
    if frames > 1:
        dataset.NumberOfFrames = frames
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 12, 11
    dataset.PixelRepresentation = 0
    # Noise, so that the ZIP cannot shrink it away.
    pixels = np.random.default_rng(seed).integers(0, 4096, size=(frames, rows, columns), dtype=np.uint16)
    dataset.PixelData = pixels.tobytes()
    return dataset, pixels


def peak_bytes_while(work) -> tuple[int, object]:
    tracemalloc.start()
    try:
        result = work()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def drained(response) -> int:
    """Read a streamed body the way a WSGI server does, chunk by chunk, keeping none of it."""
    assert isinstance(response, StreamingHttpResponse)
    return sum(len(chunk) for chunk in response.streaming_content)


@pytest.fixture
def big_study(db):
    """Twelve 2 MB CT instances (24 MB) in one study."""
    study_uid, series_uid = generate_uid(), generate_uid()
    results = [
        dicom_ingest(
            data=dataset_bytes(
                ct_dataset(study_uid=study_uid, series_uid=series_uid, rows=1024, columns=1024, seed=seed)[0]
            ),
            source=ImageSource.UPLOAD,
        )
        for seed in range(12)
    ]
    return results[0].study, sum(result.image.size_bytes for result in results)


@pytest.fixture
def staff_api(api_client, staff_user):
    api_client.force_authenticate(staff_user)
    return api_client


@pytest.mark.django_db
def test_wado_retrieve_streams_a_study_without_holding_it(staff_api, big_study):
    study, stored = big_study
    response = staff_api.get(f"/dicomweb/studies/{study.study_instance_uid}", HTTP_ACCEPT="multipart/related")
    assert response.status_code == 200
    peak, sent = peak_bytes_while(lambda: drained(response))
    assert sent > stored > 20 * MB
    assert peak < stored / 4, f"peak {peak:,} bytes for a {stored:,}-byte study"


@pytest.mark.django_db
@pytest.mark.parametrize(("anonymised", "share"), [(False, 4), (True, 2)])
def test_study_export_streams_without_holding_the_zip(client, staff_user, big_study, anonymised, share):
    study, stored = big_study
    client.force_login(staff_user)
    response = client.get(f"/studies/{study.id}/export.zip" + ("?anonymised=1" if anonymised else ""))
    assert response.status_code == 200
    peak, sent = peak_bytes_while(lambda: drained(response))
    assert sent > stored * 0.7
    # Anonymised: one instance is parsed, cleaned and written at a time (a few copies of 2 MB).
    assert peak < stored / share, f"peak {peak:,} bytes for a {stored:,}-byte study"


@pytest.fixture
def multiframe(db):
    dataset, pixels = ct_dataset(
        study_uid=generate_uid(), series_uid=generate_uid(), rows=256, columns=256, frames=8, seed=7
    )
    dicom_ingest(data=dataset_bytes(dataset), source=ImageSource.UPLOAD)
    url = (
        f"/dicomweb/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}/frames/"
    )
    return url, pixels


@pytest.mark.django_db
def test_frame_list_is_deduplicated_in_the_order_asked(staff_api, multiframe):
    url, pixels = multiframe
    response = staff_api.get(url + "3,1,3,3,1")
    assert response.status_code == 200
    _, parts = parse_multipart_related(b"".join(response.streaming_content), response["Content-Type"])
    assert [part.data for part in parts] == [pixels[2].astype("<u2").tobytes(), pixels[0].astype("<u2").tobytes()]
    assert staff_api.get(url + "9").status_code == 404
    assert staff_api.get(url + "1,x").status_code == 400


@pytest.mark.django_db
def test_an_over_long_frame_list_is_refused_before_anything_is_read(staff_api, multiframe, settings):
    url, _ = multiframe
    limit = settings.MEDPORTAL_DICOMWEB_MAX_FRAMES
    assert staff_api.get(url + ",".join(["1"] * limit)).status_code == 200  # at the cap: fine, sent once

    # Built, this would be limit + 1 copies of a 128 KB frame.
    peak, response = peak_bytes_while(lambda: staff_api.get(url + ",".join(["1"] * (limit + 1))))
    assert response.status_code == 400
    assert f"At most {limit} frame numbers" in response.content.decode()
    assert peak < 2 * MB, f"peak {peak:,} bytes"

    settings.MEDPORTAL_DICOMWEB_MAX_FRAMES = 3
    assert staff_api.get(url + "1,2,3,4").status_code == 400


def test_pixel_budget_counts_samples_frames_and_bytes(settings):
    settings.MEDPORTAL_MAX_IMAGE_PIXELS = 1_000_000
    settings.MEDPORTAL_MAX_PIXEL_BYTES = 10_000_000
    pixel_limit_check(width=1000, height=1000, samples=3, frames=1, bytes_per_sample=2)  # 6 MB
    for too_much in ({"samples": 3, "bytes_per_sample": 4}, {"frames": 11}, {"bytes_per_sample": 2, "frames": 6}):
        with pytest.raises(ImageRejected, match="the limit is 10,000,000 bytes"):
            pixel_limit_check(width=1000, height=1000, **too_much)
    with pytest.raises(ImageRejected, match="the limit is 1,000,000 pixels"):
        pixel_limit_check(width=1000, height=1001)


def test_a_png_counts_its_colour_samples(settings):
    settings.MEDPORTAL_MAX_PIXEL_BYTES = 20_000

    def png(mode: str) -> bytes:
        buffer = io.BytesIO()
        PILImage.new(mode, (100, 100)).save(buffer, "PNG")
        return buffer.getvalue()

    assert decode_image(png("L")).width == 100  # 10,000 bytes
    with pytest.raises(ImageRejected, match="3 samples"):
        decode_image(png("RGB"))  # 30,000 bytes


def test_a_dicom_header_claiming_gigabytes_is_refused_without_decoding(settings):
    dataset, _ = ct_dataset(study_uid=generate_uid(), series_uid=generate_uid(), rows=4, columns=4)
    dataset.PatientID = "BOMB-0001"
    dataset.Rows = dataset.Columns = 4096
    dataset.NumberOfFrames = 64  # 4096 x 4096 x 64 frames x 2 bytes = 2 GiB, in a file of a few hundred bytes
    data = dataset_bytes(dataset)
    assert len(data) < 4096

    def parse():
        with pytest.raises(ImageRejected, match="64 frames") as refused:
            dicom_parse(data)
        return refused

    peak, _ = peak_bytes_while(parse)
    assert peak < 2 * MB


def test_an_export_zip_is_a_valid_archive_when_read_back(db, client, staff_user, multiframe):
    client.force_login(staff_user)
    study = Study.objects.get()
    archive = zipfile.ZipFile(io.BytesIO(b"".join(client.get(f"/studies/{study.id}/export.zip").streaming_content)))
    assert archive.testzip() is None and len(archive.namelist()) == 1
