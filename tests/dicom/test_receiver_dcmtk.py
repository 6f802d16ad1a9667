"""The C-STORE receiver driven by DCMTK's storescu and echoscu, the tools a modality integrator tries
first: an allowed peer stores; an unknown AE title, or a known one from another address, is refused
at association; a conflicting patient is held; an instance over the limit is refused.

DCMTK comes from Debian's ``dcmtk`` package (.ci/run installs it). Without it these tests are
skipped on a developer's machine and fail in CI. storescu cannot choose its source address, so the
address check is driven here by allowing the title only from another loopback address (and, from
that address, by pynetdicom in test_receiver.py).
"""

import subprocess
from pathlib import Path

import pytest

from audit.models import AuditEvent
from imaging.dicom.receiver import ReceiverConfig, receiver_start
from imaging.models import DicomPeer, HeldInstance, Image
from patients.models import Patient
from tests.dicom.support import chest_radiograph_dataset, dataset_bytes
from tests.dicom.synthetic import NON_IMAGE_CLASSES, basic_text_sr, non_image
from tests.factories import PatientFactory
from tests.support.dcmtk import require_dcmtk

pytestmark = pytest.mark.django_db(transaction=True)

TOOLS = require_dcmtk("storescu", "echoscu")


@pytest.fixture
def port():
    server = receiver_start(ReceiverConfig(ae_title="MEDPORTAL", host="127.0.0.1", port=0))
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def dcmtk(tool: str, port: int, calling: str, *args: str) -> subprocess.CompletedProcess:
    # -d prints the C-STORE response in full, its Error Comment included.
    command = [TOOLS[tool], "-d", "-aet", calling, "-aec", "MEDPORTAL", "127.0.0.1", str(port), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)  # noqa: S603


def radiograph(tmp_path: Path, name: str = "cxr.dcm", **tags) -> Path:
    path = tmp_path / name
    chest_radiograph_dataset(**tags).save_as(path, enforce_file_format=True)
    return path


def test_an_allowed_peer_echoes_and_stores(port, tmp_path):
    DicomPeer.objects.create(ae_title="ECHOSCU", network="127.0.0.1")
    DicomPeer.objects.create(ae_title="CT1", network="127.0.0.0/24")
    echo = dcmtk("echoscu", port, "ECHOSCU")
    assert echo.returncode == 0, echo.stdout + echo.stderr
    result = dcmtk("storescu", port, "CT1", str(radiograph(tmp_path, patient_id="CXR-0100")))
    assert result.returncode == 0, result.stdout + result.stderr
    image = Image.objects.get()
    assert image.study.patient.mrn == "CXR-0100" and image.source == "c-store"
    event = AuditEvent.objects.get(object_id=str(image.id))
    assert (event.action, event.interface, event.actor_username, event.ip_address) == (
        "create", "dimse", "CT1", "127.0.0.1",
    )  # fmt: skip


def test_an_unknown_ae_title_is_refused_and_recorded(port, tmp_path):
    DicomPeer.objects.create(ae_title="CT1", network="127.0.0.1")
    result = dcmtk("storescu", port, "STRANGER", str(radiograph(tmp_path)))
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Calling AE Title Not Recognized" in output, output
    assert not Image.objects.exists() and not Patient.objects.exists()
    event = AuditEvent.objects.get(action="login_failed")
    assert (event.actor_username, event.ip_address, event.interface) == ("STRANGER", "127.0.0.1", "dimse")


def test_a_known_ae_title_from_an_address_not_allowed_is_refused(port, tmp_path):
    DicomPeer.objects.create(ae_title="CT1", network="127.0.0.2")  # CT1 is allowed, but only from there
    result = dcmtk("storescu", port, "CT1", str(radiograph(tmp_path)))
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Calling AE Title Not Recognized" in output, output
    assert not Image.objects.exists()
    event = AuditEvent.objects.get(action="login_failed")
    assert (event.actor_username, event.ip_address) == ("CT1", "127.0.0.1")


def test_a_conflicting_patient_is_held_and_the_sender_told_nothing_about_the_record(port, tmp_path):
    DicomPeer.objects.create(ae_title="CT1", network="127.0.0.1")
    PatientFactory(mrn="CXR-0100", family_name="Lovelace", given_name="Ada")
    impostor = radiograph(tmp_path, patient_id="CXR-0100", patient_name="Byron^George", birth_date="19880122")
    result = dcmtk("storescu", port, "CT1", str(impostor))
    output = result.stdout + result.stderr
    assert "0xc000: Error: Cannot understand" in output, output
    assert "Patient identity conflict; held for reconciliation." in output, output
    assert "Lovelace" not in output
    assert not Image.objects.exists()
    held = HeldInstance.objects.get()
    assert (held.reason, held.peer, held.patient.mrn) == ("patient_mismatch", "CT1 at 127.0.0.1", "CXR-0100")


def test_an_instance_over_the_limit_is_refused(port, tmp_path, settings):
    DicomPeer.objects.create(ae_title="CT1", network="127.0.0.1")
    path = radiograph(tmp_path)
    settings.MEDPORTAL_MAX_DICOM_BYTES = path.stat().st_size // 2
    result = dcmtk("storescu", port, "CT1", str(path))
    output = result.stdout + result.stderr
    assert "0xa700: Refused: Out of resources" in output, output
    assert "Instance too large for this receiver; not stored." in output, output
    assert not Image.objects.exists() and not Patient.objects.exists() and not HeldInstance.objects.exists()


def test_a_whole_study_with_its_non_image_instances_is_stored(port, tmp_path):
    """A PACS forwarding a study sends its reports, key objects, presentation states, ECGs, PDFs and
    RT objects with the images: every one is stored as sent, and only the image is analysed."""
    DicomPeer.objects.create(ae_title="PACS", network="127.0.0.1")
    xray = chest_radiograph_dataset(patient_id="CXR-0200", patient_name="Lovelace^Ada", birth_date="19700101")
    study = {"uid": xray.StudyInstanceUID, "accession": xray.AccessionNumber, "description": "XR CHEST PA"}
    patient = {"id": "CXR-0200", "name": "Lovelace^Ada"}
    sent = {"xray.dcm": dataset_bytes(xray), "basic-sr.dcm": basic_text_sr(patient=patient, study=study)}
    sent |= {f"{kind}.dcm": non_image(kind, patient=patient, study=study) for kind in sorted(NON_IMAGE_CLASSES)}
    for name, data in sent.items():
        (tmp_path / name).write_bytes(data)
    result = dcmtk("storescu", port, "PACS", *(str(tmp_path / name) for name in sent))
    assert result.returncode == 0, result.stdout + result.stderr
    images = Image.objects.all()
    assert len(images) == len(sent) and len({image.study_id for image in images}) == 1
    assert {image.sop_class_uid for image in images if not image.has_pixels} == {
        "1.2.840.10008.5.1.4.1.1.88.11",
        *(uid for uid, _ in NON_IMAGE_CLASSES.values()),
    }
    assert [image.analysable for image in images if image.has_pixels] == [True]
    stored = set()
    for image in images:
        with image.file.open("rb") as handle:
            stored.add(_data_set(handle.read()))
    assert stored == {_data_set(data) for data in sent.values()}  # each data set byte for byte


def _data_set(part10: bytes) -> bytes:
    """A Part 10 file without its preamble and file meta (the receiver writes its own file meta)."""
    assert part10[128:132] == b"DICM" and part10[132:136] == b"\x02\x00\x00\x00"  # (0002,0000) group length
    return part10[144 + int.from_bytes(part10[140:144], "little") :]
