"""De-identification against the whole PS3.15 E.1-1 table: a data set with every attribute filled."""

import io
import itertools
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo
from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian

from imaging.dicom.deid import (
    MASKED_PROFILE,
    PROFILE,
    burned_in_text_risk,
    dataset_deidentify,
    pseudonym,
    pseudonymous_uid,
)
from imaging.dicom.export import jpeg_without_metadata, png_without_metadata, study_export_stream
from imaging.dicom.services import dicom_ingest
from imaging.intake import image_upload
from imaging.models import ImageSource
from tests.dicom.support import dataset_bytes, retagged
from tests.factories import StudyFactory

REPO = Path(__file__).resolve().parents[2]
MARK = "MARKXQ"  # in every original text, name, code and byte value
DATE, TIME, DATETIME = "19870613", "134501.25", "19870613134501"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_counter = itertools.count(1)


def original_uid() -> str:
    return f"1.2.826.0.1.3680043.10.999.{next(_counter)}"


def nested_item(uids: list[str]) -> Dataset:
    """A sequence item with identifying values of its own, a private tag and a deeper sequence."""
    item = Dataset()
    uids.append(original_uid())
    item.ReferencedSOPClassUID = CT_IMAGE_STORAGE
    item.ReferencedSOPInstanceUID = uids[-1]
    item.PatientName = f"{MARK}^Nested"
    item.StudyDate = DATE
    item.ObservationDateTime = DATETIME
    item.CodeMeaning = "chest"
    item.TextValue = f"{MARK} free text"
    item.private_block(0x0011, f"{MARK} CREATOR", create=True).add_new(0x01, "LO", f"{MARK} private")
    inner = Dataset()
    inner.PersonName = f"{MARK}^Deeper"
    inner.ContentDate = DATE
    item.ContentSequence = Sequence([inner])
    return item


def value_for(vr: str, uids: list[str]):
    vr = vr.split(" or ")[0]
    if vr == "UI":
        uids.append(original_uid())
        return uids[-1]
    if vr == "SQ":
        return Sequence([nested_item(uids)])
    return {
        "AE": f"{MARK}AE",
        "AS": "042Y",
        "CS": MARK,
        "DA": DATE,
        "DS": "12.5",
        "DT": DATETIME,
        "IS": "42",
        "PN": f"{MARK}^Person",
        "SH": f"{MARK} SH",
        "TM": TIME,
        "UR": f"https://{MARK.lower()}.example/x",
        "US": 7,
        "SS": 7,
        "UL": 7,
        "SL": 7,
        "FL": 1.5,
        "FD": 1.5,
        "OB": MARK.encode(),
        "OW": MARK.encode(),
        "UN": MARK.encode(),
    }.get(vr, f"{MARK} {vr} text")


def full_table_dataset() -> tuple[FileDataset, dict, list[str]]:
    """Every attribute of the table, with a value of its VR; overlays, curves, private tags and file meta too."""
    uids: list[str] = []
    originals = {}
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = f"{MARK}AE"
    meta.SendingApplicationEntityTitle = f"{MARK}SEND"
    meta.ReceivingApplicationEntityTitle = f"{MARK}RECV"
    meta.ImplementationVersionName = f"{MARK}_1"
    meta.PrivateInformationCreatorUID = original_uid()
    meta.PrivateInformation = MARK.encode()
    uids.append(meta.PrivateInformationCreatorUID)
    dataset = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    for tag in PROFILE:
        if tag.group in (0x0000, 0x0002):
            continue  # command elements are never stored; the file meta is filled above
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "LO"  # newer than pydicom's dictionary
        value = value_for(vr, uids)
        dataset.add(DataElement(tag, vr.split(" or ")[0], value))
        originals[tag] = value
    for group in (0x5000, 0x5002, 0x6000, 0x6002):  # curves and overlays, whole groups
        dataset.add(DataElement(Tag(group, 0x0010), "US", 4))
        dataset.add(DataElement(Tag(group, 0x0022), "LO", f"{MARK} description"))
        dataset.add(DataElement(Tag(group, 0x3000), "OB", MARK.encode()))
        dataset.add(DataElement(Tag(group, 0x4000), "LT", f"{MARK} comment"))
    for group, element, _group_mask, _element_mask, _action in MASKED_PROFILE:
        assert group in (0x5000, 0x6000) and (element in (0x0000, 0x3000, 0x4000))
    dataset.private_block(0x0009, f"{MARK} CREATOR", create=True).add_new(0x01, "LO", f"{MARK} private")
    dataset.AnatomicRegionSequence = Sequence([nested_item(uids)])  # a sequence the table does not name
    dataset.SOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.PatientID = f"{MARK}-PID"
    dataset.Modality = "CT"
    dataset.BurnedInAnnotation = "NO"
    dataset.Rows = dataset.Columns = 4
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    dataset.PixelData = bytes(range(16))
    return dataset, originals, uids


def walk(dataset: Dataset):
    for element in dataset:
        yield element
        if element.VR == "SQ":
            for item in element.value:
                yield from walk(item)


def deidentified_round_trip(dataset: FileDataset) -> tuple[FileDataset, bytes]:
    dataset_deidentify(dataset)
    data = dataset_bytes(dataset)
    return pydicom.dcmread(io.BytesIO(data)), data


def empty(value) -> bool:
    return value in (None, "", b"") or (isinstance(value, Sequence) and len(value) == 0)


def test_every_attribute_of_the_table_gets_its_action():
    dataset, originals, uids = full_table_dataset()
    assert len(originals) > 600  # the whole table, not a sample of it
    out, data = deidentified_round_trip(dataset)
    for tag, original in originals.items():
        # A sequence's items are cleaned in place: the MARK check below covers what they held.
        original = None if isinstance(original, Sequence) else original
        action = PROFILE[tag]
        if tag in (Tag("PatientID"), Tag("PatientName")):
            continue  # replaced by the pseudonym, checked below
        present = tag in out
        value = out[tag].value if present else None
        if action == "X":
            assert not present, (tag, action)
        elif action == "Z":
            assert present and empty(value), (tag, action, value)
        elif action == "U":
            assert value == pseudonymous_uid(original), (tag, action, value)
        elif action == "D":
            assert present and not empty(value) and value != original, (tag, action, value)
        else:  # Z/D, X/Z, X/D, X/Z/D, X/Z/U*: gone, empty or a dummy, never the original
            assert not present or empty(value) or value != original, (tag, action, value)
    assert out.PatientID == str(out.PatientName) == pseudonym(f"{MARK}-PID")
    assert out.PatientIdentityRemoved == "YES"
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert out.DeidentificationMethodCodeSequence[0].CodeValue == "113100"

    # Nothing identifying survives anywhere, at any depth, nor in the file meta.
    assert MARK.encode() not in data and MARK.lower().encode() not in data
    for uid in uids:
        assert uid.encode() not in data, uid
    for element in walk(out):
        assert not element.tag.is_private, element
        assert not (0x5000 <= element.tag.group <= 0x50FF or 0x6000 <= element.tag.group <= 0x60FF), element
        if element.VR in ("DA", "DT", "TM") and element.value:
            assert DATE not in str(element.value) and TIME not in str(element.value), element
    meta = out.file_meta
    assert {element.keyword for element in meta} <= {
        "FileMetaInformationGroupLength",
        "FileMetaInformationVersion",
        "MediaStorageSOPClassUID",
        "MediaStorageSOPInstanceUID",
        "TransferSyntaxUID",
        "ImplementationClassUID",
        "ImplementationVersionName",
    }
    assert meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID != dataset_uid(originals, "SOPInstanceUID")
    assert out.SOPClassUID == CT_IMAGE_STORAGE  # standard UIDs stay
    assert list(out.pixel_array.ravel()) == list(range(16))  # the image itself is intact


def dataset_uid(originals: dict, keyword: str) -> str:
    return originals[Tag(keyword)]


def test_uids_are_consistent_for_one_key_and_differ_for_another(settings):
    first, originals, _ = full_table_dataset()
    second, _, _ = full_table_dataset()
    second.StudyInstanceUID = first.StudyInstanceUID
    study = first.StudyInstanceUID
    a, _ = deidentified_round_trip(first)
    b, _ = deidentified_round_trip(second)
    assert a.StudyInstanceUID == b.StudyInstanceUID == pseudonymous_uid(study)
    assert a.SOPInstanceUID != b.SOPInstanceUID

    settings.SECRET_KEY = "another-session-key"  # the session key plays no part
    assert pseudonymous_uid(study) == a.StudyInstanceUID
    settings.MEDPORTAL_DEID_KEY = "another-deidentification-key"
    assert pseudonymous_uid(study) != a.StudyInstanceUID
    assert pseudonym("MRN-1") != pseudonym("MRN-2")


def test_no_key_no_pseudonyms(settings):
    settings.MEDPORTAL_DEID_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="MEDPORTAL_DEID_KEY"):
        pseudonym("MRN-1")


@pytest.mark.parametrize(
    ("tags", "withheld"),
    [
        ({"Modality": "CT", "BurnedInAnnotation": "NO"}, False),
        ({"Modality": "CT"}, True),  # no clear NO
        ({"Modality": "CT", "BurnedInAnnotation": "YES"}, True),
        ({"Modality": "US", "BurnedInAnnotation": "NO"}, True),
        ({"Modality": "OT", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "BurnedInAnnotation": "NO"}, True),
        ({"Modality": "OT", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.6.1", "BurnedInAnnotation": "NO"}, True),
    ],
)
def test_images_that_may_show_text_are_withheld(tags, withheld):
    dataset = Dataset()
    dataset.SOPClassUID = CT_IMAGE_STORAGE
    for keyword, value in tags.items():
        setattr(dataset, keyword, value)
    assert (burned_in_text_risk(dataset) is not None) is withheld


def read_zip(chunks) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(chunks)))


def png_with_text() -> bytes:
    info = PngInfo()
    info.add_text("Author", "Smith John")
    info.add_itxt("Comment", "MRN 0042 Smith")
    buffer = io.BytesIO()
    PILImage.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def jpeg_with_text() -> bytes:
    exif = PILImage.Exif()
    exif[0x013B] = "Smith John"  # Artist
    buffer = io.BytesIO()
    image = PILImage.fromarray(np.full((64, 64, 3), 120, dtype=np.uint8))
    image.save(buffer, "JPEG", exif=exif, comment=b"Smith John, MRN 0042")
    return buffer.getvalue()


@pytest.mark.django_db
def test_anonymised_export_withholds_possible_burned_in_text_and_names_no_file(client, radiologist_user):
    shown = dicom_ingest(data=retagged("CT_small.dcm", BurnedInAnnotation="NO"), source=ImageSource.UPLOAD)
    study = shown.study
    for tags in ({}, {"Modality": "US", "BurnedInAnnotation": "NO"}, {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}):
        dicom_ingest(data=retagged("CT_small.dcm", **tags), source=ImageSource.UPLOAD)
    image_upload(study=study, data=png_with_text(), filename="Smith_John_CXR.png")
    assert study.images.count() == 5
    client.force_login(radiologist_user)

    response = client.get(f"/studies/{study.id}/export.zip?anonymised=1")
    assert response.status_code == 200 and response.streaming
    assert "Smith" not in response["Content-Disposition"]
    archive = read_zip(response.streaming_content)
    dicom_names = [name for name in archive.namelist() if name.endswith(".dcm")]
    assert len(dicom_names) == 1
    assert pydicom.dcmread(io.BytesIO(archive.read(dicom_names[0]))).SOPInstanceUID == pseudonymous_uid(
        shown.image.sop_instance_uid
    )
    manifest = archive.read("MANIFEST.txt").decode()
    withheld = [line for line in manifest.splitlines() if line.startswith("- image")]
    assert len(withheld) == 4, manifest
    assert "Instances exported: 1" in manifest
    assert any("US" in line and "ultrasound" in line for line in withheld)
    assert any("secondary capture" in line for line in withheld)
    assert any("PNG" in line for line in withheld)
    assert any("BurnedInAnnotation" in line for line in withheld)
    for name in archive.namelist():
        raw = archive.read(name)
        for value in (b"Smith", b"CXR.png", study.patient.mrn.encode(), study.accession_number.encode()):
            assert value not in raw, (name, value)
        for uid in study.images.exclude(sop_instance_uid=None).values_list("sop_instance_uid", flat=True):
            assert uid.encode() not in raw


@pytest.mark.django_db
def test_png_and_jpeg_leave_in_an_export_without_their_metadata(client, staff_user):
    study = StudyFactory()
    png, jpeg = png_with_text(), jpeg_with_text()
    assert b"Smith" in png and b"Smith" in jpeg
    image_upload(study=study, data=png, filename="Smith_John_CXR.png")
    image_upload(study=study, data=jpeg, filename="Smith_John_photo.jpg")
    client.force_login(staff_user)
    archive = read_zip(client.get(f"/studies/{study.id}/export.zip").streaming_content)
    files = {name: archive.read(name) for name in archive.namelist()}
    assert sorted(files) == ["0001.png", "0002.jpg"]
    for name, data in files.items():
        assert b"Smith" not in data and b"0042" not in data, name
        assert not PILImage.open(io.BytesIO(data)).info.get("exif")
    for original, name in ((png, "0001.png"), (jpeg, "0002.jpg")):
        assert np.array_equal(
            np.asarray(PILImage.open(io.BytesIO(original))), np.asarray(PILImage.open(io.BytesIO(files[name])))
        )


def test_metadata_strippers_refuse_what_they_do_not_know():
    with pytest.raises(ValueError):
        png_without_metadata(b"not a png")
    with pytest.raises(ValueError):
        jpeg_without_metadata(b"not a jpeg")


@pytest.mark.django_db
def test_the_same_study_exports_to_the_same_pseudonyms(radiologist_user):
    study = dicom_ingest(data=retagged("CT_small.dcm", BurnedInAnnotation="NO"), source=ImageSource.UPLOAD).study

    def uids():
        archive = read_zip(study_export_stream(study=study, anonymised=True))
        return {
            (dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID)
            for dataset in (pydicom.dcmread(io.BytesIO(archive.read(n))) for n in archive.namelist() if ".dcm" in n)
        }

    first = uids()
    assert first == uids()
    with override_settings(MEDPORTAL_DEID_KEY="another-deidentification-key"):
        assert uids().isdisjoint(first)


def _production(**extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MEDPORTAL_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="medportal.settings.production",
        DJANGO_SECRET_KEY="x" * 20 + "-production-like-secret-key-for-the-check-0123456789",
        DJANGO_ALLOWED_HOSTS="medportal.example.org",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/medportal",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        **extra,
    )
    code = "import django; django.setup(); from django.conf import settings; print(len(settings.MEDPORTAL_DEID_KEY))"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_production_requires_its_own_deidentification_key():
    missing = _production()
    assert missing.returncode != 0 and "MEDPORTAL_DEID_KEY" in missing.stderr
    same = _production(MEDPORTAL_DEID_KEY="x" * 20 + "-production-like-secret-key-for-the-check-0123456789")
    assert same.returncode != 0 and "must differ" in same.stderr
    given = _production(MEDPORTAL_DEID_KEY="y" * 40)
    assert given.returncode == 0, given.stderr
    assert given.stdout.strip().splitlines()[-1] == "40"
