"""The Query/Retrieve SCP driven by DCMTK's own clients: findscu, movescu and getscu, with storescp as
the C-MOVE destination. They are what a PACS integrator tries first; if they work, a PACS does.

DCMTK comes from Debian's ``dcmtk`` package (.ci/run installs it). Without it these tests are
skipped on a developer's machine and fail in CI.
"""

import re
import socket
import subprocess
from pathlib import Path

import pydicom
import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from imaging.dicom.receiver import ReceiverConfig, receiver_start
from imaging.intake import IncomingFile, files_intake
from imaging.models import DicomPeer, Image, ImageSource
from tests.dicom.support import chest_radiograph_dataset, dataset_bytes, free_port, shipped_bytes, shipped_path
from tests.support.dcmtk import require_dcmtk
from tests.support.workers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TOOLS = require_dcmtk("findscu", "movescu", "getscu", "storescp")

AE_TITLE = "MEDPORTAL"
DESTINATION = "STORESCP"


def _store(data: bytes) -> Image:
    [intake] = files_intake(files=[IncomingFile.from_bytes(data)], source=ImageSource.C_STORE)
    assert intake.stored, intake.error
    return intake.image


@pytest.fixture
def archive():
    """Three patients: a CT, an MR study of two instances in one series, and an RLE-compressed SC."""
    mr = pydicom.dcmread(shipped_path("MR_small.dcm"))
    mr.SOPInstanceUID = mr.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    mr.InstanceNumber = 2
    cxr = chest_radiograph_dataset(patient_id="CXR-0042", patient_name="Lovelace^Ada")
    return {
        "ct": _store(shipped_bytes("CT_small.dcm")),
        "mr": _store(shipped_bytes("MR_small.dcm")),
        "mr2": _store(dataset_bytes(mr)),
        "rle": _store(shipped_bytes("SC_rgb_rle.dcm")),
        "cxr": _store(dataset_bytes(cxr)),
    }


@pytest.fixture
def storescp(tmp_path):
    """DCMTK's Storage SCP, the C-MOVE destination, writing what it receives to a directory."""
    port = free_port()
    received = tmp_path / "received"
    received.mkdir()
    process = subprocess.Popen(
        [TOOLS["storescp"], "-aet", DESTINATION, "+xa", "-od", str(received), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, timeout=10, message="storescp did not start")
        yield port, received
    finally:
        process.terminate()
        process.communicate(timeout=10)


@pytest.fixture
def scp(storescp):
    """The receiver, with DCMTK's clients on its allow-list and storescp as a peer with a storage port."""
    port, _ = storescp
    for client in ("FINDSCU", "MOVESCU", "GETSCU"):
        DicomPeer.objects.create(ae_title=client, network="127.0.0.1/32")
    DicomPeer.objects.create(ae_title=DESTINATION, network="127.0.0.1/32", port=port)
    # A peer on the allow-list without a storage port is no C-MOVE destination.
    DicomPeer.objects.create(ae_title="NOPORT", network="127.0.0.1/32")
    server = receiver_start(ReceiverConfig(ae_title=AE_TITLE, host="127.0.0.1", port=0))
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def dcmtk(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TOOLS[tool], *args], capture_output=True, text=True, timeout=60)  # noqa: S603


def findscu(port: int, tmp_path: Path, *keys: str, model: str = "-S") -> list[pydicom.Dataset]:
    """Run findscu; each answer is written to a file (-X), read back here in order."""
    out = tmp_path / f"find-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    args = [model, "-aet", "FINDSCU", "-aec", AE_TITLE, "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    result = dcmtk("findscu", *args, "127.0.0.1", str(port))
    assert result.returncode == 0, result.stdout + result.stderr
    return [pydicom.dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]


def movescu(
    port: int, *keys: str, options: tuple[str, ...] = ("-v", "-S"), destination: str = DESTINATION, check: bool = True
) -> str:
    """Run movescu with these query keys; its whole output, for the response lines."""
    args = [*options, "-aet", "MOVESCU", "-aec", AE_TITLE, "-aem", destination]
    for key in keys:
        args += ["-k", key]
    result = dcmtk("movescu", *args, "127.0.0.1", str(port))
    output = result.stdout + result.stderr
    if check:
        assert result.returncode == 0, output
    return output


def test_c_find_study_level_matches_on_the_usual_keys(archive, scp, tmp_path):
    mr = archive["mr"]
    keys = ("QueryRetrieveLevel=STUDY", "StudyInstanceUID", "PatientName", "StudyDate", "AccessionNumber")
    counts = ("NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "ModalitiesInStudy")

    [answer] = findscu(scp, tmp_path, *keys, *counts, "PatientID=4MR1")
    assert answer.StudyInstanceUID == mr.study.study_instance_uid
    assert (answer.NumberOfStudyRelatedSeries, answer.NumberOfStudyRelatedInstances) == (1, 2)
    assert answer.ModalitiesInStudy == "MR"
    assert str(answer.PatientName) == "CompressedSamples^MR1"
    assert answer.StudyDate == "20040826"
    # The MR file has no accession number: none is answered (MedPortal's own key for the study is not one).
    assert answer.AccessionNumber == ""
    assert "PatientBirthDate" not in answer  # only the keys asked for come back

    # Wildcards on the name, a date range, a UID list, the accession number and the modality.
    by_name = findscu(scp, tmp_path, *keys, "PatientName=CompressedSamples*")
    ct_study = archive["ct"].study.study_instance_uid
    assert {a.StudyInstanceUID for a in by_name} == {ct_study, mr.study.study_instance_uid}
    by_range = findscu(scp, tmp_path, *keys, "StudyDate=20040101-20040331")
    assert [a.StudyInstanceUID for a in by_range] == [ct_study]
    uids = f"{archive['cxr'].study.study_instance_uid}\\{archive['rle'].study.study_instance_uid}"
    by_uids = findscu(scp, tmp_path, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={uids}")
    assert {a.StudyInstanceUID for a in by_uids} == set(uids.split("\\"))
    by_accession = findscu(scp, tmp_path, *keys, f"AccessionNumber={archive['cxr'].study.accession_number}")
    assert [a.StudyInstanceUID for a in by_accession] == [archive["cxr"].study.study_instance_uid]
    by_modality = findscu(scp, tmp_path, *keys, "ModalitiesInStudy=CT")
    assert [a.StudyInstanceUID for a in by_modality] == [ct_study]
    assert findscu(scp, tmp_path, *keys, "PatientID=NOBODY") == []
    # '?' stands for one character anywhere, '*' for any run, case aside.
    [ada] = findscu(scp, tmp_path, *keys, "PatientName=l?vel*E^A*")
    assert ada.StudyInstanceUID == archive["cxr"].study.study_instance_uid
    assert findscu(scp, tmp_path, *keys, "PatientName=L?velace^Ada?") == []


def test_c_find_past_the_limit_answers_what_it_may_and_says_to_narrow_the_query(archive, scp, tmp_path, settings):
    settings.MEDPORTAL_DICOM_FIND_LIMIT = 2
    out = tmp_path / "limited"
    out.mkdir()
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID"]
    result = dcmtk("findscu", "-d", "-S", "-X", "-od", str(out), "-aec", AE_TITLE, *keys, "127.0.0.1", str(scp))
    assert len(list(out.glob("rsp*.dcm"))) == 2
    assert re.search(r"DIMSE Status\s*: 0xa700", result.stdout + result.stderr, re.IGNORECASE), result.stdout


def test_a_peer_not_on_the_allow_list_cannot_query(archive, scp, tmp_path):
    result = dcmtk(
        "findscu", "-S", "-aet", "STRANGER", "-aec", AE_TITLE, "-k", "QueryRetrieveLevel=STUDY", "127.0.0.1", str(scp)
    )
    assert result.returncode != 0
    assert "Association Rejected" in result.stdout + result.stderr
    assert not AuditEvent.objects.filter(detail__startswith="C-FIND").exists()
    wait_for(lambda: AuditEvent.objects.filter(action="login_failed", actor_username="STRANGER").exists(), timeout=5)


def test_c_find_patient_series_and_image_levels(archive, scp, tmp_path):
    mr = archive["mr"]
    [patient] = findscu(
        scp,
        tmp_path,
        "QueryRetrieveLevel=PATIENT",
        "PatientName=Lovelace^Ada",
        "PatientID",
        "PatientBirthDate",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedInstances",
        model="-P",
    )
    assert (patient.PatientID, patient.PatientBirthDate) == ("CXR-0042", "19601210")
    assert (patient.NumberOfPatientRelatedStudies, patient.NumberOfPatientRelatedInstances) == (1, 1)

    series_keys = ("QueryRetrieveLevel=SERIES", "SeriesInstanceUID", "Modality", "NumberOfSeriesRelatedInstances")
    [series] = findscu(scp, tmp_path, *series_keys, f"StudyInstanceUID={mr.study.study_instance_uid}")
    assert (series.SeriesInstanceUID, series.Modality) == (mr.series_instance_uid, "MR")
    assert series.NumberOfSeriesRelatedInstances == 2
    assert findscu(scp, tmp_path, *series_keys, f"StudyInstanceUID={mr.study.study_instance_uid}", "Modality=CT") == []

    image_keys = ("QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={mr.study.study_instance_uid}", "SOPClassUID")
    instances = findscu(
        scp, tmp_path, *image_keys, f"SeriesInstanceUID={mr.series_instance_uid}", "SOPInstanceUID", "InstanceNumber"
    )
    assert {i.SOPInstanceUID for i in instances} == {mr.sop_instance_uid, archive["mr2"].sop_instance_uid}
    assert sorted(int(i.InstanceNumber) for i in instances) == [1, 2]  # from the stored headers
    [one] = findscu(scp, tmp_path, *image_keys, f"SOPInstanceUID={archive['mr2'].sop_instance_uid}")
    assert one.SOPClassUID == mr.sop_class_uid

    # Study Root has no PATIENT level: the peer is told so.
    result = dcmtk("findscu", "-d", "-S", "-aec", AE_TITLE, "-k", "QueryRetrieveLevel=PATIENT", "127.0.0.1", str(scp))
    assert re.search(r"DIMSE Status\s*: 0xa900", result.stdout + result.stderr, re.IGNORECASE), result.stdout


def test_c_find_is_audited_with_the_peer_and_what_it_returned(archive, scp, tmp_path):
    answers = findscu(scp, tmp_path, "QueryRetrieveLevel=STUDY", "StudyInstanceUID", "PatientName=CompressedSamples*")
    rows = AuditEvent.objects.filter(interface="dimse", detail="C-FIND STUDY")
    assert len(answers) == 2 and rows.count() == 2
    assert {(row.actor_username, row.ip_address, row.action) for row in rows} == {("FINDSCU", "127.0.0.1", "read")}
    assert {row.object_id for row in rows} == {str(archive["ct"].study_id), str(archive["mr"].study_id)}
    assert {row.patient_id for row in rows} == {archive["ct"].study.patient_id, archive["mr"].study.patient_id}

    assert findscu(scp, tmp_path, "QueryRetrieveLevel=STUDY", "PatientID=NOBODY") == []
    assert AuditEvent.objects.filter(interface="dimse", detail="C-FIND STUDY: no match", object_id="").count() == 1


def _pixels_and_uid(path: Path) -> tuple[str, bytes]:
    dataset = pydicom.dcmread(path)
    return dataset.SOPInstanceUID, dataset.PixelData


def _stored(image: Image) -> tuple[str, bytes]:
    return _pixels_and_uid(Path(image.file.path))


def test_c_move_sends_a_study_to_a_known_destination_as_stored(archive, scp, storescp, tmp_path):
    _, received = storescp
    mr = archive["mr"]
    output = movescu(scp, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={mr.study.study_instance_uid}")
    assert "Received Final Move Response (Success)" in output, output
    delivered = sorted(_pixels_and_uid(path) for path in received.iterdir())
    assert delivered == sorted([_stored(mr), _stored(archive["mr2"])])

    rows = AuditEvent.objects.filter(interface="dimse", detail=f"C-MOVE to {DESTINATION}")
    assert {(row.actor_username, row.action) for row in rows} == {("MOVESCU", "download")}
    assert {row.object_id for row in rows} == {str(mr.id), str(archive["mr2"].id)}


def test_c_move_keeps_a_compressed_instance_compressed_and_reports_the_counts(archive, scp, storescp, tmp_path):
    _, received = storescp
    rle = archive["rle"]
    output = movescu(scp, "QueryRetrieveLevel=PATIENT", f"PatientID={rle.study.patient.mrn}", options=("-d", "-P"))
    [path] = received.iterdir()
    delivered = pydicom.dcmread(path)
    assert delivered.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    assert (delivered.SOPInstanceUID, delivered.PixelData) == _stored(rle)
    # The final response counts the sub-operations: one completed, none failed, warned or remaining.
    final = output[output.rindex("C-MOVE RSP") :]
    counts = dict(re.findall(r"(Remaining|Completed|Failed|Warning) Suboperations\s*: (\d+)", final))
    assert counts == {"Remaining": "0", "Completed": "1", "Failed": "0", "Warning": "0"}, final
    assert "0x0000: Success" in final


@pytest.mark.parametrize("destination", ["ELSEWHERE", "NOPORT"])
def test_c_move_to_an_unknown_destination_is_refused_and_recorded(archive, scp, destination):
    study_uid = archive["ct"].study.study_instance_uid
    output = movescu(
        scp,
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={study_uid}",
        options=("-S",),
        destination=destination,
        check=False,
    )
    assert "Refused: MoveDestinationUnknown" in output, output  # status 0xA801
    refused = AuditEvent.objects.get(interface="dimse", detail=f"C-MOVE refused: unknown destination {destination}")
    assert (refused.actor_username, refused.ip_address) == ("MOVESCU", "127.0.0.1")
    assert not AuditEvent.objects.filter(detail__startswith="C-MOVE to").exists()


def test_a_move_destination_is_one_host():
    peer = DicomPeer(ae_title="PACS", network="10.1.2.0/24", port=104)
    with pytest.raises(ValidationError, match="one address"):
        peer.full_clean()
    peer.network = "10.1.2.3"
    peer.full_clean()
    assert (peer.network, peer.host) == ("10.1.2.3/32", "10.1.2.3")


def test_c_get_returns_the_instances_on_the_same_association(archive, scp, tmp_path):
    mr = archive["mr"]
    out = tmp_path / "got"
    out.mkdir()
    result = dcmtk(
        "getscu",
        "-v",
        "-S",
        "-aet",
        "GETSCU",
        "-aec",
        AE_TITLE,
        "-od",
        str(out),
        "-k",
        "QueryRetrieveLevel=SERIES",
        "-k",
        f"StudyInstanceUID={mr.study.study_instance_uid}",
        "-k",
        f"SeriesInstanceUID={mr.series_instance_uid}",
        "127.0.0.1",
        str(scp),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    delivered = sorted(_pixels_and_uid(path) for path in out.iterdir())
    assert delivered == sorted([_stored(mr), _stored(archive["mr2"])])
    rows = AuditEvent.objects.filter(interface="dimse", detail="C-GET")
    assert {(row.actor_username, row.ip_address, row.action) for row in rows} == {("GETSCU", "127.0.0.1", "download")}
    assert {row.object_id for row in rows} == {str(mr.id), str(archive["mr2"].id)}


def test_c_get_counts_an_instance_the_peer_cannot_take_in_its_stored_syntax_as_failed(archive, scp, tmp_path):
    out = tmp_path / "got"
    out.mkdir()
    rle = archive["rle"]
    keys = ["-k", "QueryRetrieveLevel=IMAGE", "-k", f"StudyInstanceUID={rle.study.study_instance_uid}"]
    keys += ["-k", f"SeriesInstanceUID={rle.series_instance_uid}", "-k", f"SOPInstanceUID={rle.sop_instance_uid}"]
    # getscu proposes only uncompressed syntaxes by default; the instance is RLE and is not transcoded.
    result = dcmtk(
        "getscu", "-d", "-S", "-aet", "GETSCU", "-aec", AE_TITLE, "-od", str(out), *keys, "127.0.0.1", str(scp)
    )
    output = result.stdout + result.stderr
    final = output[output.rindex("C-GET RSP") :]
    counts = dict(re.findall(r"(Remaining|Completed|Failed|Warning) Suboperations\s*: (\d+)", final))
    assert counts.get("Failed") == "1" and counts.get("Completed", "0") == "0", final
    assert not list(out.iterdir())

    # Offered RLE, the peer gets it as stored.
    result = dcmtk(
        "getscu", "+xr", "-S", "-aet", "GETSCU", "-aec", AE_TITLE, "-od", str(out), *keys, "127.0.0.1", str(scp)
    )
    assert len(list(out.iterdir())) == 1, result.stdout + result.stderr
    [path] = out.iterdir()
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    assert _pixels_and_uid(path) == _stored(rle)
