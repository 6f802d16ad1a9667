import io
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import tracemalloc

import pydicom
import pytest
from django.db import DatabaseError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, generate_uid
from pynetdicom import AE, AllStoragePresentationContexts, StoragePresentationContexts
from pynetdicom.sop_class import Verification

from audit.models import AuditEvent
from imaging.dicom import receiver as receiver_module
from imaging.dicom.receiver import ReceiverConfig, receiver_start
from imaging.models import DicomPeer, HeldInstance, Image, ImageSource, Study
from imaging.validation import IdentityConflict
from inference.models import Prediction, PredictionStatus
from patients.models import Patient
from stack import REPO_ROOT
from tests.dicom.support import free_port, retagged, shipped_path
from tests.dicom.test_streaming import MB, ct_dataset
from tests.support.workers import wait_for


def send(port: int, datasets, *, called: str = "MEDPORTAL") -> list[int]:
    """A real SCU: associate, C-STORE each data set, release. Returns the statuses."""
    scu = AE(ae_title="MODALITY1")
    scu.requested_contexts = StoragePresentationContexts[:100]
    scu.add_requested_context(Verification)
    assoc = scu.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established
    try:
        statuses = []
        for dataset in datasets:
            status = assoc.send_c_store(dataset)
            statuses.append(int(status.Status) if status else -1)
        return statuses
    finally:
        assoc.release()


def allow(ae_title: str, network: str = "127.0.0.1") -> DicomPeer:
    return DicomPeer.objects.create(ae_title=ae_title, network=network)


@pytest.fixture
def receiver(transactional_db):
    allow("MODALITY1")
    allow("TPS")
    server = receiver_start(ReceiverConfig(ae_title="MEDPORTAL", host="127.0.0.1", port=0))
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.django_db(transaction=True)
def test_c_store_ingests_like_an_upload(receiver):
    ct = pydicom.dcmread(shipped_path("CT_small.dcm"))
    statuses = send(receiver, [ct, pydicom.dcmread(shipped_path("CT_small.dcm"))])
    assert statuses == [0x0000, 0x0000]  # the second one is the same instance: stored once
    image = Image.objects.get()
    assert image.source == ImageSource.C_STORE
    assert image.sop_instance_uid == ct.SOPInstanceUID
    assert image.study.study_instance_uid == ct.StudyInstanceUID
    assert image.study.patient.mrn == ct.PatientID


@pytest.mark.django_db(transaction=True)
def test_c_store_stores_an_instance_that_is_not_an_image(receiver):
    plan = pydicom.dcmread(shipped_path("rtplan.dcm"))  # an RT Plan: no pixel data
    scu = AE(ae_title="TPS")
    scu.requested_contexts = [c for c in AllStoragePresentationContexts if c.abstract_syntax == plan.SOPClassUID]
    assoc = scu.associate("127.0.0.1", receiver, ae_title="MEDPORTAL")
    try:
        status = assoc.send_c_store(plan)
    finally:
        assoc.release()
    assert status.Status == 0x0000
    image = Image.objects.get()
    assert image.sop_instance_uid == plan.SOPInstanceUID and image.modality == "RTPLAN"
    assert not image.analysable and image.not_analysable_reason == "Not an image (RT Plan Storage)."


@pytest.mark.django_db(transaction=True)
def test_receiver_command_runs_as_a_process_and_stops_cleanly():
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "medportal.settings.test",
        "MEDPORTAL_WORKER_USE_TEST_DB": "1",
        # The command adds the peers named in settings to the allow-list.
        "MEDPORTAL_DICOM_PEERS": "MODALITY1@127.0.0.1/32",
    }
    command = [sys.executable, "manage.py", "dicom_receiver", "--ae-title", "PACSIN", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Other apps may log a line or two while Django starts; the receiver says when it listens.
        started = [process.stdout.readline()]
        while "listening" not in started[-1] and started[-1] and len(started) < 20:
            started.append(process.stdout.readline())
        assert "listening" in started[-1], "".join(started)
        mr = pydicom.dcmread(shipped_path("MR_small.dcm"))
        assert send(port, [mr], called="PACSIN") == [0x0000]
        image = Image.objects.get(sop_instance_uid=mr.SOPInstanceUID)
        assert image.source == ImageSource.C_STORE
        assert DicomPeer.objects.get().network == "127.0.0.1/32"
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "stopped" in output


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_c_stored_chest_radiograph_gets_an_ai_second_opinion(receiver, tiny_model, celery_worker, chest_radiograph):
    dataset = pydicom.dcmread(io.BytesIO(chest_radiograph(patient_id="CXR-0100")))
    assert send(receiver, [dataset]) == [0x0000]
    image = Image.objects.get(sop_instance_uid=dataset.SOPInstanceUID)
    prediction = wait_for(
        lambda: Prediction.objects.filter(image=image, status=PredictionStatus.SUCCEEDED).first(),
        timeout=240,
        message=f"No AI result for the C-STORE'd radiograph.\n{celery_worker.log()[-3000:]}",
    )
    assert prediction.model_id == tiny_model.id
    assert prediction.label in tiny_model.labels
    assert 0.0 <= prediction.confidence <= 1.0


@pytest.mark.django_db(transaction=True)
def test_c_store_is_audited_with_the_peer_and_unknown_peers_are_refused_and_recorded():
    allow("MODALITY1")
    server = receiver_start(ReceiverConfig(ae_title="MEDPORTAL", host="127.0.0.1", port=0))
    port = server.server_address[1]
    try:
        assert send(port, [pydicom.dcmread(shipped_path("CT_small.dcm"))]) == [0x0000]
        image = Image.objects.get()
        stored = AuditEvent.objects.get(interface="dimse", action="create")
        assert (stored.actor_username, stored.ip_address, stored.object_id) == ("MODALITY1", "127.0.0.1", str(image.id))
        assert stored.patient_id == image.study.patient_id and stored.actor is None

        stranger = AE(ae_title="STRANGER")
        stranger.add_requested_context(Verification)
        assert not stranger.associate("127.0.0.1", port, ae_title="MEDPORTAL").is_established
        wrong_name = AE(ae_title="MODALITY1")
        wrong_name.add_requested_context(Verification)
        assert not wrong_name.associate("127.0.0.1", port, ae_title="ANYTHING").is_established
        wait_for(lambda: AuditEvent.objects.filter(action="login_failed").count() == 2, timeout=5)
        refused = set(AuditEvent.objects.filter(action="login_failed").values_list("actor_username", "ip_address"))
        assert refused == {("STRANGER", "127.0.0.1"), ("MODALITY1", "127.0.0.1")}
    finally:
        server.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_patient_conflict_is_refused_without_naming_the_other_patient(receiver):
    ct = pydicom.dcmread(shipped_path("CT_small.dcm"))
    assert send(receiver, [ct]) == [0x0000]
    impostor = pydicom.dcmread(io.BytesIO(retagged("CT_small.dcm", PatientID="SOMEONE-ELSE", SOPInstanceUID="1.2.3.4")))
    scu = AE(ae_title="MODALITY1")
    scu.requested_contexts = StoragePresentationContexts[:100]
    assoc = scu.associate("127.0.0.1", receiver, ae_title="MEDPORTAL")
    try:
        status = assoc.send_c_store(impostor)
    finally:
        assoc.release()
    # It reuses the StudyInstanceUID of another patient's study: held, never filed there.
    assert status.Status == 0xC000
    assert status.ErrorComment == IdentityConflict.HELD_PEER_MESSAGE
    assert ct.PatientID not in status.ErrorComment
    assert Image.objects.count() == 1 and not Patient.objects.filter(mrn="SOMEONE-ELSE").exists()
    held = HeldInstance.objects.get()
    assert (held.reason, held.peer, held.patient.mrn) == ("study_mismatch", "MODALITY1 at 127.0.0.1", ct.PatientID)
    event = AuditEvent.objects.get(object_type="imaging.heldinstance")
    assert (event.action, event.actor_username, event.ip_address, event.patient_id) == (
        "create", "MODALITY1", "127.0.0.1", held.patient_id,
    )  # fmt: skip


def associate(port: int, *, calling: str, called: str = "MEDPORTAL", source: str | None = None):
    scu = AE(ae_title=calling)
    scu.add_requested_context(Verification)
    # Another loopback address stands for another host: the machine has no other network.
    kwargs = {"bind_address": (source, 0)} if source else {}
    return scu.associate("127.0.0.1", port, ae_title=called, **kwargs)


def rejection(assoc) -> tuple[int, int, int]:
    """(result, source, reason) of the A-ASSOCIATE-RJ the peer received."""
    assert assoc.is_rejected
    answer = assoc.acceptor.primitive
    return (answer.result, answer.result_source, answer.diagnostic)


@pytest.mark.django_db(transaction=True)
def test_only_allowed_peers_associate_by_title_and_address():
    allow("MODALITY1", "127.0.0.2")  # the right title, but only from another address
    allow("WARD", "127.0.0.0/24")
    server = receiver_start(ReceiverConfig(ae_title="MEDPORTAL", host="127.0.0.1", port=0))
    port = server.server_address[1]
    try:
        # From 127.0.0.1: calling AE title not recognised (rejected-permanent, service user, reason 3).
        assert rejection(associate(port, calling="MODALITY1")) == (0x01, 0x01, 0x03)
        assert rejection(associate(port, calling="STRANGER")) == (0x01, 0x01, 0x03)
        # From 127.0.0.2, the address it is allowed from, it is in.
        allowed = associate(port, calling="MODALITY1", source="127.0.0.2")
        assert allowed.is_established and allowed.send_c_echo().Status == 0x0000
        allowed.release()
        in_network = associate(port, calling="WARD")
        assert in_network.is_established
        in_network.release()
        wait_for(lambda: AuditEvent.objects.filter(action="login_failed").count() == 2, timeout=5)
        refused = set(AuditEvent.objects.filter(action="login_failed").values_list("actor_username", "ip_address"))
        assert refused == {("MODALITY1", "127.0.0.1"), ("STRANGER", "127.0.0.1")}
        for event in AuditEvent.objects.filter(action="login_failed"):
            assert event.interface == "dimse" and "unknown peer" in event.detail
    finally:
        server.shutdown()


@pytest.mark.django_db(transaction=True)
def test_an_empty_allow_list_refuses_every_association():
    server = receiver_start(ReceiverConfig(ae_title="MEDPORTAL", host="127.0.0.1", port=0))
    try:
        assert rejection(associate(server.server_address[1], calling="ANYONE")) == (0x01, 0x01, 0x03)
    finally:
        server.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_peer_that_cannot_be_checked_is_refused(monkeypatch):
    allow("MODALITY1")

    def outage(**_):
        raise DatabaseError("the database is down")

    monkeypatch.setattr(receiver_module, "dicom_peer_allowed", outage)
    server = receiver_start(ReceiverConfig(ae_title="MEDPORTAL", host="127.0.0.1", port=0))
    try:
        assert rejection(associate(server.server_address[1], calling="MODALITY1")) == (0x01, 0x01, 0x03)
    finally:
        server.shutdown()


def test_a_pdu_announced_too_long_closes_the_connection_before_it_is_read(receiver):
    # An A-ASSOCIATE-RQ header claiming almost 4 GiB: pynetdicom would read all of it into memory.
    with socket.create_connection(("127.0.0.1", receiver), timeout=10) as sock:
        sock.sendall(b"\x01\x00" + struct.pack(">L", 0xFFFFFFF0) + b"\x00" * 1024)
        assert sock.recv(1024) == b""  # closed by the receiver, no answer
    # The receiver still serves allowed peers.
    assert send(receiver, [pydicom.dcmread(shipped_path("CT_small.dcm"))]) == [0x0000]


SCU_SCRIPT = """
import sys
from pynetdicom import AE, StoragePresentationContexts
path, port = sys.argv[1], int(sys.argv[2])
scu = AE(ae_title="MODALITY1")
scu.requested_contexts = StoragePresentationContexts[:100]
assoc = scu.associate("127.0.0.1", port, ae_title="MEDPORTAL")
status = assoc.send_c_store(path)
assoc.release()
print(hex(status.Status))
print(status.get("ErrorComment", ""))
"""


@pytest.mark.django_db(transaction=True)
def test_an_instance_over_the_limit_is_refused_without_being_held_in_memory_or_on_disk(
    receiver, settings, tmp_path, monkeypatch
):
    settings.MEDPORTAL_MAX_DICOM_BYTES = 2 * MB
    large = tmp_path / "large.dcm"
    ct, _ = ct_dataset(study_uid=generate_uid(), series_uid=generate_uid(), rows=4096, columns=2048)  # 16 MiB
    ct.save_as(large, enforce_file_format=True)
    assert large.stat().st_size > 16 * MB
    # The datasets being received are written here; the largest any of them grew to is kept.
    received = tmp_path / "receiving"
    received.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(received))
    largest = 0

    def measured_truncate(path, length):
        nonlocal largest
        largest = max(largest, os.path.getsize(path))
        truncate(path, length)

    truncate = os.truncate
    monkeypatch.setattr(receiver_module.os, "truncate", measured_truncate)
    # The sender is another process, so that only the receiver's allocations are traced here.
    tracemalloc.start()
    try:
        result = subprocess.run(
            [sys.executable, "-c", SCU_SCRIPT, str(large), str(receiver)],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    status, comment = result.stdout.split("\n")[:2]
    assert int(status, 16) == 0xA700, result.stdout + result.stderr
    assert comment == "Instance too large for this receiver; not stored."
    size = large.stat().st_size
    assert peak < size // 4, f"the receiver held {peak:,} bytes for a {size:,}-byte instance"
    assert not Image.objects.exists() and not Patient.objects.exists() and not Study.objects.exists()
    # The file stopped growing at the limit (within one PDU), was emptied, and is gone.
    assert 2 * MB < largest <= 2 * MB + 1024 * 1024, largest
    assert list(received.iterdir()) == []


@pytest.mark.django_db(transaction=True)
def test_c_store_accepts_the_transfer_syntax_the_sender_prefers_and_stores_it_as_sent(receiver):
    """Offered RLE first, then uncompressed, in one context: RLE is accepted and the file kept as it was."""
    rle = pydicom.dcmread(shipped_path("SC_rgb_rle.dcm"))
    scu = AE(ae_title="MODALITY1")
    scu.add_requested_context(rle.SOPClassUID, [RLELossless, ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = scu.associate("127.0.0.1", receiver, ae_title="MEDPORTAL")
    try:
        [context] = assoc.accepted_contexts
        assert context.transfer_syntax == [RLELossless]
        assert assoc.send_c_store(rle).Status == 0x0000
    finally:
        assoc.release()
    image = Image.objects.get()
    assert image.transfer_syntax_uid == RLELossless
    stored = pydicom.dcmread(image.file.path)
    assert (stored.SOPInstanceUID, stored.PixelData) == (rle.SOPInstanceUID, rle.PixelData)
