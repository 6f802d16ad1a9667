import io
import os
import signal
import subprocess
import sys

import pydicom
import pytest
from pynetdicom import AE, AllStoragePresentationContexts, StoragePresentationContexts
from pynetdicom.sop_class import Verification

from audit.models import AuditEvent
from imaging.dicom.receiver import ReceiverConfig, receiver_start
from imaging.models import Image, ImageSource
from imaging.validation import IdentityConflict
from inference.models import Prediction, PredictionStatus
from stack import REPO_ROOT
from tests.dicom.support import free_port, retagged, shipped_path
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


@pytest.fixture
def receiver():
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
def test_c_store_refuses_an_instance_it_cannot_file(receiver):
    plan = pydicom.dcmread(shipped_path("rtplan.dcm"))  # an RT Plan: no image
    scu = AE(ae_title="TPS")
    scu.requested_contexts = [c for c in AllStoragePresentationContexts if c.abstract_syntax == plan.SOPClassUID]
    assoc = scu.associate("127.0.0.1", receiver, ae_title="MEDPORTAL")
    try:
        status = assoc.send_c_store(plan)
    finally:
        assoc.release()
    assert status.Status == 0xC000
    assert "no image" in status.ErrorComment
    assert not Image.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_receiver_command_runs_as_a_process_and_stops_cleanly():
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "medportal.settings.test", "MEDPORTAL_WORKER_USE_TEST_DB": "1"}
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
    server = receiver_start(
        ReceiverConfig(ae_title="MEDPORTAL", host="127.0.0.1", port=0, allowed_calling_ae_titles=("MODALITY1",))
    )
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
    assert status.Status == 0xC000
    assert status.ErrorComment == IdentityConflict.PEER_MESSAGE
    assert ct.PatientID not in status.ErrorComment
    assert Image.objects.count() == 1
