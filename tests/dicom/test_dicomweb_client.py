"""DICOMweb driven by the standard Python client (dicomweb-client) against a live server, with an API token."""

import io

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image as PILImage
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from imaging.dicomweb.multipart import build_multipart_related, parse_multipart_related
from imaging.intake import IncomingFile, files_intake
from imaging.models import Image, ImageSource
from inference.dicom_report import COMPREHENSIVE_SR_STORAGE, prediction_sr_bytes
from inference.models import Prediction
from tests.dicom.support import chest_radiograph_dataset, dataset_bytes, shipped_bytes, shipped_path
from tests.dicom.synthetic import new_study, non_image
from tests.dicom.test_reports_and_export import succeed
from tokens.services import api_token_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def token_key(staff_user):
    return api_token_create(name="viewer", user=staff_user)[1]


@pytest.fixture
def client(live_server, token_key) -> DICOMwebClient:
    return DICOMwebClient(url=f"{live_server.url}/dicomweb", headers={"Authorization": f"Bearer {token_key}"})


def _stored(client, *names: str) -> list[pydicom.Dataset]:
    datasets = [pydicom.dcmread(shipped_path(name)) for name in names]
    client.store_instances(datasets=datasets)
    return datasets


def _get(client, url: str, accept: str) -> requests.Response:
    return client._session.get(f"{client.base_url}{url}", headers={"Accept": accept})


def _instance_url(dataset) -> str:
    return f"/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}/instances/{dataset.SOPInstanceUID}"


def _as_sent(client, uri: str) -> str:
    """The URI on the live server's port: the client sends its Host header without the port, so
    URIs built from it name port 80 (not so behind a proxy on the standard ports)."""
    path = uri.split("/dicomweb", 1)[1]
    return f"{client.base_url}{path}"


def test_retrieve_defaults_to_explicit_little_endian_and_always_has_file_meta(client):
    [implicit, jpeg2000] = _stored(client, "MR_small_implicit.dcm", "JPEG2000.dcm")

    # application/dicom without a transfer syntax: the default, Explicit VR Little Endian.
    for original in (implicit, jpeg2000):
        uids = (original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID)
        got = client.retrieve_instance(*uids, media_types=("application/dicom",))
        assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert got.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID
        assert (got.pixel_array == original.pixel_array).all()

    # "*" (the client's own default) is as stored: the JPEG 2000 bitstream untouched.
    got = client.retrieve_instance(jpeg2000.StudyInstanceUID, jpeg2000.SeriesInstanceUID, jpeg2000.SOPInstanceUID)
    assert got.file_meta.TransferSyntaxUID == jpeg2000.file_meta.TransferSyntaxUID
    assert got.PixelData == jpeg2000.PixelData

    # An instance received without preamble or file meta comes back as a Part 10 file.
    bare = pydicom.dcmread(shipped_path("CT_small.dcm"))
    bare.preamble, bare.file_meta = None, FileMetaDataset()
    buffer = io.BytesIO()
    bare.save_as(buffer, implicit_vr=False, little_endian=True)
    assert buffer.getvalue()[:4] == b"\x08\x00\x05\x00"  # the data set straight away
    body, content_type = build_multipart_related(
        [("application/dicom", buffer.getvalue())], root_type="application/dicom"
    )
    stored = client._session.post(f"{client.base_url}/studies", data=body, headers={"Content-Type": content_type})
    assert stored.status_code == 200, stored.text
    got = client.retrieve_instance(bare.StudyInstanceUID, bare.SeriesInstanceUID, bare.SOPInstanceUID)
    assert got.preamble is not None
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert got.file_meta.MediaStorageSOPClassUID == bare.SOPClassUID
    assert (got.pixel_array == pydicom.dcmread(shipped_path("CT_small.dcm")).pixel_array).all()


def test_retrieve_transcodes_losslessly_or_answers_406(client):
    [ct] = _stored(client, "CT_small.dcm")
    uids = (ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID)
    for syntax in (RLELossless, JPEGLSLossless, JPEG2000Lossless):
        got = client.retrieve_instance(*uids, media_types=(("application/dicom", syntax),))
        assert got.file_meta.TransferSyntaxUID == syntax
        assert (got.pixel_array == ct.pixel_array).all(), syntax

    # Implicit VR Little Endian (which the client will not ask for itself).
    implicit = _get(
        client,
        _instance_url(ct),
        f'multipart/related; type="application/dicom"; transfer-syntax={ImplicitVRLittleEndian}',
    )
    _, [part] = parse_multipart_related(implicit.content, implicit.headers["Content-Type"])
    assert part.content_type == f"application/dicom; transfer-syntax={ImplicitVRLittleEndian}"
    got = pydicom.dcmread(io.BytesIO(part.data))
    assert got.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian and got.original_encoding == (True, True)
    assert (got.pixel_array == ct.pixel_array).all()

    # Lossy JPEG cannot be made from the stored pixels without loss: 406, never another syntax with 200.
    lossy = _get(
        client, _instance_url(ct), 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    )
    assert lossy.status_code == 406
    # A lossy original cannot be offered as lossless either.
    [jpeg] = _stored(client, "SC_rgb_jpeg_dcmtk.dcm")
    assert (
        _get(
            client, _instance_url(jpeg), f'multipart/related; type="application/dicom"; transfer-syntax={RLELossless}'
        ).status_code
        == 406
    )
    # Several choices: the first that can be provided is taken.
    both = _get(
        client,
        _instance_url(jpeg),
        f'multipart/related; type="application/dicom"; transfer-syntax={RLELossless}, '
        'multipart/related; type="application/dicom"; transfer-syntax=*;q=0.5',
    )
    assert both.status_code == 200
    assert "transfer-syntax=1.2.840.10008.1.2.4.50" in both.content[:300].decode("latin-1")


def test_frames_come_with_their_media_types(client):
    [ct, jpeg] = _stored(client, "CT_small.dcm", "SC_rgb_jpeg_dcmtk.dcm")

    # Uncompressed: octet-stream, little-endian samples.
    [frame] = client.retrieve_instance_frames(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID, [1])
    assert frame == ct.pixel_array.astype("<i2").tobytes()

    # A JPEG original: the JPEG bitstream as image/jpeg.
    uids = (jpeg.StudyInstanceUID, jpeg.SeriesInstanceUID, jpeg.SOPInstanceUID)
    [frame] = client.retrieve_instance_frames(*uids, [1], media_types=(("image/jpeg", "1.2.840.10008.1.2.4.50"),))
    assert frame[:2] == b"\xff\xd8"
    response = _get(
        client,
        f"{_instance_url(jpeg)}/frames/1",
        'multipart/related; type="application/octet-stream"; transfer-syntax=*',
    )
    assert response.status_code == 200
    assert "Content-Type: image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50" in response.content[:200].decode(
        "latin-1"
    )
    # The client's default (octet-stream, "*") is as stored too.
    [frame] = client.retrieve_instance_frames(*uids, [1])
    assert frame[:2] == b"\xff\xd8"
    # ... and decoded when uncompressed octets are asked for.
    [frame] = client.retrieve_instance_frames(
        *uids, [1], media_types=(("application/octet-stream", ExplicitVRLittleEndian),)
    )
    assert len(frame) == jpeg.Rows * jpeg.Columns * 3
    # Not a media type the frame can be: 406.
    assert _get(client, f"{_instance_url(jpeg)}/frames/1", 'multipart/related; type="image/jp2"').status_code == 406
    # Duplicate frame numbers are sent once.
    frames = client.retrieve_instance_frames(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID, [1, 1])
    assert len(frames) == 1


def test_metadata_bulk_data_uris_resolve(client):
    [ct] = _stored(client, "CT_small.dcm")
    metadata = client.retrieve_instance_metadata(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID)
    pixel_uri = metadata["7FE00010"]["BulkDataURI"]
    assert pixel_uri.endswith(f"{_instance_url(ct)}/bulkdata/7FE00010")
    assert metadata["7FE00010"]["vr"] == "OW"  # 16-bit samples
    [pixels] = client.retrieve_bulkdata(_as_sent(client, pixel_uri))
    assert pixels == ct.pixel_array.astype("<i2").tobytes()
    # A large private binary value is by reference too, and its URI gives exactly that value.
    private_uri = metadata["00431029"]["BulkDataURI"]
    [value] = client.retrieve_bulkdata(_as_sent(client, private_uri))
    assert value == ct[0x00431029].value


def test_rendered_and_thumbnail_at_every_level(client):
    [ct, rle] = _stored(client, "CT_small.dcm", "SC_rgb_rle_2frame.dcm")
    study, series, instance = ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID

    jpeg = client.retrieve_instance_rendered(study, series, instance, media_types=("image/jpeg",))
    picture = PILImage.open(io.BytesIO(jpeg))
    assert picture.format == "JPEG" and picture.size == (ct.Columns, ct.Rows)
    png = client.retrieve_instance_rendered(
        study, series, instance, media_types=("image/png",), params={"viewport": "256,256"}
    )
    picture = PILImage.open(io.BytesIO(png))
    assert picture.format == "PNG" and picture.size == (256, 256)  # scaled up to fit, square stays square

    # A window of the client's choosing changes the picture: a narrow window saturates more pixels.
    narrow = client.retrieve_instance_rendered(
        study, series, instance, media_types=("image/png",), params={"window": "100,10"}
    )
    wide = client.retrieve_instance_rendered(
        study, series, instance, media_types=("image/png",), params={"window": "100,4000"}
    )
    saturated = [int((np.asarray(PILImage.open(io.BytesIO(data))) % 255 == 0).sum()) for data in (narrow, wide)]
    assert saturated[0] > saturated[1]

    assert PILImage.open(io.BytesIO(client.retrieve_series_rendered(study, series))).format == "JPEG"
    # The client has no call for a rendered study; the resource is there all the same.
    study_png = _get(client, f"/studies/{study}/rendered", "image/png").content
    assert PILImage.open(io.BytesIO(study_png)).format == "PNG"

    # Frame level: each frame of a two-frame colour image on its own.
    rle_uids = (rle.StudyInstanceUID, rle.SeriesInstanceUID, rle.SOPInstanceUID)
    frames = [
        np.asarray(
            PILImage.open(
                io.BytesIO(client.retrieve_instance_frames_rendered(*rle_uids, [n], media_types=("image/png",)))
            )
        )
        for n in (1, 2)
    ]
    assert frames[0].shape == (rle.Rows, rle.Columns, 3)
    assert (frames[0] == rle.pixel_array[0]).all() and (frames[1] == rle.pixel_array[1]).all()

    # Thumbnails fit in 128 by 128 unless a viewport says otherwise.
    for url in (
        f"/studies/{study}/thumbnail",
        f"/studies/{study}/series/{series}/thumbnail",
        f"{_instance_url(ct)}/thumbnail",
        f"{_instance_url(ct)}/frames/1/thumbnail",
    ):
        response = _get(client, url, "image/jpeg")
        assert response.status_code == 200, url
        assert response.headers["Content-Type"] == "image/jpeg"
        assert max(PILImage.open(io.BytesIO(response.content)).size) == 128, url

    assert _get(client, f"{_instance_url(ct)}/rendered", "image/gif").status_code == 406
    assert _get(client, f"{_instance_url(ct)}/rendered?viewport=0,9", "image/jpeg").status_code == 400
    assert _get(client, f"{_instance_url(ct)}/rendered?window=40", "image/jpeg").status_code == 400
    assert _get(client, f"{_instance_url(ct)}/frames/2/rendered", "image/jpeg").status_code == 404


@pytest.fixture
def searchable(client):
    """A CT+MR study (with a StudyTime, StudyID and accession), an NM study and an MR study of another patient."""
    ct, mr_same_study, nm, mr = (
        pydicom.dcmread(shipped_path(name)) for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "MR_small.dcm")
    )
    ct.AccessionNumber, ct.StudyTime, ct.StudyID = "ACC-1", "101500.25", "4711"
    for key in (
        "StudyInstanceUID",
        "PatientID",
        "PatientName",
        "PatientAge",
        "AccessionNumber",
        "StudyTime",
        "StudyID",
        "StudyDate",
    ):
        setattr(mr_same_study, key, ct.get(key))
    mr_same_study.SeriesInstanceUID, mr_same_study.SOPInstanceUID = generate_uid(), generate_uid()
    nm.StudyTime = "183000"
    client.store_instances(datasets=[ct, mr_same_study, nm, mr])
    return {"ct": ct, "nm": nm, "mr": mr}


def _uids(results) -> list[str]:
    return sorted(pydicom.Dataset.from_json(item).StudyInstanceUID for item in results)


def test_qido_study_matching(client, searchable):
    ct, nm, mr = searchable["ct"], searchable["nm"], searchable["mr"]

    [study] = client.search_for_studies(search_filters={"StudyInstanceUID": ct.StudyInstanceUID})
    study = pydicom.Dataset.from_json(study)
    assert sorted(study.ModalitiesInStudy) == ["CT", "MR"]
    assert (study.StudyTime, study.StudyID, study.AccessionNumber) == ("101500", "4711", "ACC-1")
    assert (study.NumberOfStudyRelatedSeries, study.NumberOfStudyRelatedInstances) == (2, 2)
    [nm_study] = client.search_for_studies(search_filters={"StudyInstanceUID": nm.StudyInstanceUID})
    assert pydicom.Dataset.from_json(nm_study).ModalitiesInStudy == "NM"  # as sent, not mapped to OT

    def found(**filters):
        return _uids(client.search_for_studies(search_filters=filters))

    assert found(ModalitiesInStudy="MR") == sorted([ct.StudyInstanceUID, mr.StudyInstanceUID])
    assert found(ModalitiesInStudy="NM") == [nm.StudyInstanceUID]
    assert found(ModalitiesInStudy="NM,CT") == sorted([ct.StudyInstanceUID, nm.StudyInstanceUID])
    assert found(StudyTime="1000-1100") == [ct.StudyInstanceUID]
    assert found(StudyTime="10") == [ct.StudyInstanceUID]  # to its precision: the hour
    assert found(StudyTime="1015") == [ct.StudyInstanceUID]
    assert found(StudyTime="183000") == [nm.StudyInstanceUID]
    assert found(StudyTime="1830-") == sorted([mr.StudyInstanceUID, nm.StudyInstanceUID])
    assert found(StudyDate="20040101-20040201") == [ct.StudyInstanceUID]
    assert found(StudyDate="20040826", StudyTime="-184000") == [nm.StudyInstanceUID]
    assert found(StudyID="4711") == [ct.StudyInstanceUID]
    assert found(AccessionNumber="ACC-1") == [ct.StudyInstanceUID]
    assert found(AccessionNumber="acc*") == [ct.StudyInstanceUID]
    assert found(PatientID="8NM1") == [nm.StudyInstanceUID]
    assert found(PatientName="compressed*^nm*") == [nm.StudyInstanceUID]
    assert found(PatientName="*^?R1") == [mr.StudyInstanceUID]
    assert found(PatientName="samples") == []  # not fuzzy: the whole family name
    fuzzy = client.search_for_studies(search_filters={"PatientName": "nm1 compr"}, fuzzymatching=True)
    assert _uids(fuzzy) == [nm.StudyInstanceUID]


def test_qido_includefield_limit_offset_and_warnings(client, searchable):
    ct = searchable["ct"]
    [study] = client.search_for_studies(
        search_filters={"StudyInstanceUID": ct.StudyInstanceUID}, fields=["PatientAge", "00104000"]
    )
    assert study["00101010"]["Value"] == ["000Y"]  # PatientAge, from the instance
    assert study["00104000"] == {"vr": "LT"}  # PatientComments: asked for, none in the instance
    [everything] = client.search_for_studies(search_filters={"StudyInstanceUID": ct.StudyInstanceUID}, fields=["all"])
    assert everything["00101010"]["Value"] == ["000Y"]

    # A viewer's study list asks for Modality too: not a study attribute, so no header is read for it.
    listed = _get(client, f"/studies?StudyInstanceUID={ct.StudyInstanceUID}&includefield=00081030,00080060", "*/*")
    [item] = listed.json()
    assert "00080060" not in item and item["00081030"]["vr"] == "LO"
    assert "Modality" in listed.headers["Warning"]

    first = client.search_for_studies(limit=2)
    rest = client.search_for_studies(limit=2, offset=2)
    assert len(first) == 2 and len(rest) == 1
    assert set(_uids(first)).isdisjoint(_uids(rest))

    truncated = _get(client, "/studies?limit=2", "application/dicom+json")
    assert truncated.status_code == 200
    assert truncated.headers["Warning"].startswith("299 ")
    assert "offset=2" in truncated.headers["Warning"]
    assert "Warning" not in _get(client, "/studies?limit=3", "application/dicom+json").headers

    ignored = _get(client, "/studies?ReferringPhysicianName=Smith&00081030=x*", "application/dicom+json")
    assert "ReferringPhysicianName" in ignored.headers["Warning"]
    assert "00081030" not in ignored.headers["Warning"]  # StudyDescription, by tag, is matched on
    assert ignored.status_code == 204


def test_qido_series_and_instances_at_every_level(client, searchable):
    ct, nm = searchable["ct"], searchable["nm"]

    every_series = client.search_for_series()
    assert len(every_series) == 4
    mr_series = [pydicom.Dataset.from_json(s) for s in client.search_for_series(search_filters={"Modality": "MR"})]
    assert len(mr_series) == 2 and {s.Modality for s in mr_series} == {"MR"}
    # Across studies, a series carries its study and patient.
    assert {s.PatientID for s in mr_series} == {ct.PatientID, "4MR1"}

    in_study = [pydicom.Dataset.from_json(s) for s in client.search_for_series(ct.StudyInstanceUID)]
    assert sorted(s.Modality for s in in_study) == ["CT", "MR"]
    assert all(s.StudyInstanceUID == ct.StudyInstanceUID for s in in_study)

    assert len(client.search_for_instances()) == 4
    [nm_instance] = client.search_for_instances(search_filters={"Modality": "NM"})
    assert pydicom.Dataset.from_json(nm_instance).SOPInstanceUID == nm.SOPInstanceUID
    [ct_instance] = client.search_for_instances(ct.StudyInstanceUID, ct.SeriesInstanceUID)
    assert pydicom.Dataset.from_json(ct_instance).SOPInstanceUID == ct.SOPInstanceUID
    assert len(client.search_for_instances(ct.StudyInstanceUID)) == 2
    [by_patient] = client.search_for_instances(search_filters={"PatientID": "8NM1"})
    assert pydicom.Dataset.from_json(by_patient).SOPInstanceUID == nm.SOPInstanceUID
    [everything] = client.search_for_instances(ct.StudyInstanceUID, ct.SeriesInstanceUID, fields=["all"])
    assert everything["00180050"]["Value"] == [float(ct.SliceThickness)]  # SliceThickness, from the header
    assert "7FE00010" not in everything


def _basic_text_sr() -> pydicom.Dataset:
    """A minimal Basic Text SR: a storage SOP class without pixel data."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = pydicom.dataset.FileDataset("", pydicom.Dataset(), file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID, dataset.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.PatientID, dataset.PatientName, dataset.Modality = "SR-1", "Report^Only", "SR"
    return dataset


def _failure_reasons(answer: pydicom.Dataset) -> dict[str, int]:
    return {item.ReferencedSOPInstanceUID: item.FailureReason for item in answer.get("FailedSOPSequence", [])}


def test_stow_failure_reasons(client, settings, monkeypatch):
    ct, big = (pydicom.dcmread(shipped_path(name)) for name in ("JPEG2000.dcm", "CT_small.dcm"))
    settings.MEDPORTAL_MAX_DICOM_BYTES = 20_000  # the CT is 39 kB, the JPEG 2000 instance 3 kB
    not_storage = _basic_text_sr()
    not_storage.SOPClassUID = not_storage.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.1"  # Verification
    truncated = shipped_bytes("MR_small.dcm")[:3000]
    # A private transfer syntax MedPortal cannot read the data set in (an unreadable one is stored as sent).
    private_syntax = truncated.replace(b"1.2.840.10008.1.2.1\0", b"1.2.840.99999.1.2.1\0", 1)
    assert private_syntax != truncated
    report = _basic_text_sr()  # not an image, but a storage SOP class: stored
    answer = client.store_instances(datasets=[ct, big, not_storage, report])  # 202: some stored, some failed
    stored = [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence]
    assert stored == [ct.SOPInstanceUID, report.SOPInstanceUID]
    assert _failure_reasons(answer) == {big.SOPInstanceUID: 0xA700, not_storage.SOPInstanceUID: 0x0122}

    body, content_type = build_multipart_related(
        [("application/dicom", data) for data in (truncated, private_syntax)], root_type="application/dicom"
    )
    response = client._session.post(f"{client.base_url}/studies", data=body, headers={"Content-Type": content_type})
    assert response.status_code == 409  # nothing stored
    failed = pydicom.Dataset.from_json(response.json()).FailedSOPSequence
    assert [item.FailureReason for item in failed] == [0xC000, 0xC122]

    # Posted to a study it is not part of: the data set does not match the request.
    mr = pydicom.dcmread(shipped_path("MR_small_implicit.dcm"))
    with pytest.raises(requests.HTTPError) as refused:
        client.store_instances(datasets=[mr], study_instance_uid=ct.StudyInstanceUID)
    assert refused.value.response.status_code == 409
    assert _failure_reasons(pydicom.Dataset.from_json(refused.value.response.json())) == {mr.SOPInstanceUID: 0xA900}

    # Our own failure (here a fault injected into the intake) is a processing failure.
    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("imaging.dicomweb.stow.files_intake", broken)
    with pytest.raises(requests.HTTPError) as failed:
        client.store_instances(datasets=[mr])
    assert _failure_reasons(pydicom.Dataset.from_json(failed.value.response.json())) == {mr.SOPInstanceUID: 0x0110}


def test_accession_numbers_as_the_files_carry_them(client):
    """A second study with an accession number already used is its own study, and answers that number;
    a study without one answers none (MedPortal's key for it is not an accession number)."""
    first, second, none = (
        pydicom.dcmread(shipped_path(name)) for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm")
    )
    first.AccessionNumber = second.AccessionNumber = "A-REUSED"
    client.store_instances(datasets=[first, second, none])

    found = client.search_for_studies(search_filters={"AccessionNumber": "A-REUSED"})
    assert _uids(found) == sorted([first.StudyInstanceUID, second.StudyInstanceUID])
    assert {pydicom.Dataset.from_json(item).AccessionNumber for item in found} == {"A-REUSED"}
    [without] = client.search_for_studies(search_filters={"StudyInstanceUID": none.StudyInstanceUID})
    assert without["00080050"] == {"vr": "SH"}
    assert client.search_for_studies(search_filters={"AccessionNumber": "DCM-*"}) == []


def test_an_empty_patient_id_is_stored_and_answered_empty(client):
    ct, second = pydicom.dcmread(shipped_path("CT_small.dcm")), pydicom.dcmread(shipped_path("CT_small.dcm"))
    ct.PatientID = second.PatientID = ""
    second.SOPInstanceUID = generate_uid()
    answer = client.store_instances(datasets=[ct, second])
    assert len(answer.ReferencedSOPSequence) == 2

    [study] = client.search_for_studies(search_filters={"StudyInstanceUID": ct.StudyInstanceUID})
    assert study["00100020"] == {"vr": "LO"}  # as sent: empty, not MedPortal's key for the patient
    assert pydicom.Dataset.from_json(study).NumberOfStudyRelatedInstances == 2
    image = Image.objects.get(sop_instance_uid=ct.SOPInstanceUID)
    assert image.study.patient.mrn.startswith("NOID-")
    assert str(image.study.patient.family_name) == ct.PatientName.family_name


def _stow_as_is(client, *instances: bytes) -> requests.Response:
    """STOW-RS of Part 10 files exactly as given (the client would write its own encoding of a data set)."""
    body, content_type = build_multipart_related(
        [("application/dicom", data) for data in instances], root_type="application/dicom"
    )
    response = client._session.post(f"{client.base_url}/studies", data=body, headers={"Content-Type": content_type})
    response.raise_for_status()
    return response


def _retrieved_as_stored(client, dataset: pydicom.Dataset) -> bytes:
    response = _get(client, _instance_url(dataset), 'multipart/related; type="application/dicom"; transfer-syntax=*')
    assert response.status_code == 200, response.text
    _, [part] = parse_multipart_related(response.content, response.headers["Content-Type"])
    return part.data


def test_non_image_instances_are_stored_searched_and_retrieved_unchanged(client):
    patient, study = {"id": "ECG-0001", "name": "Heart^Anna"}, new_study(description="CARDIO")
    sent = [non_image(kind, patient=patient, study=study) for kind in ("ecg", "pdf", "kos", "gsps")]
    assert _stow_as_is(client, *sent).status_code == 200
    datasets = [pydicom.dcmread(io.BytesIO(data)) for data in sent]
    found = client.search_for_instances(study["uid"])
    assert {pydicom.Dataset.from_json(item).SOPInstanceUID for item in found} == {d.SOPInstanceUID for d in datasets}
    [ecg] = client.search_for_series(study["uid"], search_filters={"Modality": "ECG"})
    assert pydicom.Dataset.from_json(ecg).SeriesInstanceUID == datasets[0].SeriesInstanceUID
    for dataset, data in zip(datasets, sent, strict=True):
        assert _retrieved_as_stored(client, dataset) == data  # byte for byte
    pdf = datasets[1]
    pdf = client.retrieve_instance(pdf.StudyInstanceUID, pdf.SeriesInstanceUID, pdf.SOPInstanceUID)
    assert pdf.EncapsulatedDocument.startswith(b"%PDF")
    # Nothing to render: a clear 4xx, not a picture.
    rendered = _get(client, f"{_instance_url(datasets[0])}/rendered", "image/jpeg")
    assert 400 <= rendered.status_code < 500


def test_the_ai_report_sent_back_by_stow_is_stored_found_and_returned_identical(client, tiny_model):
    [intake] = files_intake(
        files=[IncomingFile.from_bytes(dataset_bytes(chest_radiograph_dataset()))], source=ImageSource.C_STORE
    )
    prediction = succeed(Prediction.objects.get(image=intake.image))
    report = prediction_sr_bytes(prediction=prediction)
    sr = pydicom.dcmread(io.BytesIO(report))
    assert _stow_as_is(client, report).status_code == 200

    [found] = client.search_for_instances(sr.StudyInstanceUID, search_filters={"Modality": "SR"})
    found = pydicom.Dataset.from_json(found)
    assert (found.SOPInstanceUID, found.SOPClassUID) == (sr.SOPInstanceUID, COMPREHENSIVE_SR_STORAGE)
    assert _retrieved_as_stored(client, sr) == report
    stored = Image.objects.get(sop_instance_uid=sr.SOPInstanceUID)
    assert stored.study == intake.image.study and not stored.analysable
    assert Prediction.objects.count() == 1  # the report itself is never analysed
