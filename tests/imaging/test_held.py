"""An instance that names a patient on record but does not match them is held, never filed, until an
administrator files it under that patient or rejects it. The same rule on every way in by tags."""

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom import Dataset
from rest_framework.test import APIClient

from audit.models import AuditEvent
from imaging.dicomweb.multipart import build_multipart_related
from imaging.held import held_instance_file
from imaging.intake import IncomingFile, files_intake
from imaging.models import HeldInstance, Image, ImageSource, Study
from patients.models import Patient
from tests.dicom.support import chest_radiograph_dataset, dataset_bytes
from tests.factories import PatientFactory, StudyFactory
from tests.support.images import stored_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada():
    return PatientFactory(mrn="CXR-0001", family_name="Lovelace", given_name="Ada")


def impostor(**tags) -> bytes:
    """A radiograph with Ada's PatientID but someone else's name and birth date."""
    return dataset_bytes(
        chest_radiograph_dataset(patient_id="CXR-0001", patient_name="Byron^George", birth_date="19880122", **tags)
    )


def take(data: bytes, **kwargs):
    [intake] = files_intake(files=[IncomingFile.from_bytes(data, "x.dcm")], source=ImageSource.STOW_RS, **kwargs)
    return intake


def test_a_conflicting_instance_is_held_not_filed(ada):
    before = stored_files()
    intake = take(impostor(), peer="CT1 at 10.1.2.3")
    assert not intake.stored and intake.held is not None
    assert "differs from this DICOM file (family name, given name, birth date)" in intake.error
    assert "held for an administrator" in intake.error
    assert intake.peer_error == "Patient identity conflict; held for reconciliation."
    assert not Image.objects.exists() and not Study.objects.exists() and Patient.objects.get() == ada
    held = HeldInstance.objects.get()
    assert (held.patient, held.reason, held.status, held.peer) == (ada, "patient_mismatch", "held", "CT1 at 10.1.2.3")
    assert default_storage.exists(held.file.name) and stored_files() - before == {held.file.name}
    assert take(impostor(study_uid=held.study_instance_uid)).held is not None  # a new instance of it: held too
    again = take(default_storage.open(held.file.name).read())
    assert again.held == held and HeldInstance.objects.count() == 2  # the same instance twice: held once


def test_reusing_another_patients_study_uid_is_held_and_creates_no_patient(ada):
    [ours] = files_intake(
        files=[IncomingFile.from_bytes(dataset_bytes(chest_radiograph_dataset(patient=ada)))],
        source=ImageSource.C_STORE,
    )
    intruder = take(
        dataset_bytes(chest_radiograph_dataset(patient_id="NEW-1", study_uid=ours.image.study.study_instance_uid))
    )
    assert intruder.held.reason == "study_mismatch" and intruder.held.study == ours.image.study
    assert not Patient.objects.filter(mrn="NEW-1").exists()
    assert Image.objects.count() == 1


def test_into_a_study_a_conflict_is_refused_not_held(ada):
    study = StudyFactory(patient=ada)
    intake = take(impostor(), study=study)
    assert not intake.stored and intake.held is None and "differs" in intake.error
    assert not HeldInstance.objects.exists()


def test_an_administrator_files_it_under_the_patient_or_rejects_it(
    client, admin_user, ada, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    first, second = take(impostor()).held, take(impostor()).held
    page = client.get("/admin/imaging/heldinstance/")
    assert page.status_code == 200 and b"CXR-0001" in page.content
    listed = AuditEvent.objects.filter(object_type="imaging.heldinstance", action="read", detail="list")
    assert {e.patient_id for e in listed} == {ada.id}

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/imaging/heldinstance/", {"action": "file_under_patient", "_selected_action": [str(first.id)]}
        )
    first.refresh_from_db()
    assert first.status == "filed" and first.image.study.patient == ada and first.resolved_by == admin_user
    assert not first.file and not default_storage.exists(f"held/{first.sha256[:2]}/{first.sha256}.dcm")
    assert default_storage.exists(first.image.file.name)
    event = AuditEvent.objects.filter(object_id=str(first.id)).latest("id")
    assert (event.action, event.detail, event.actor) == ("update", "action file_under_patient", admin_user)

    name = second.file.name
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/imaging/heldinstance/", {"action": "reject_and_delete", "_selected_action": [str(second.id)]}
        )
    second.refresh_from_db()
    assert second.status == "rejected" and not default_storage.exists(name) and Image.objects.count() == 1
    assert AuditEvent.objects.filter(object_id=str(second.id), detail="action reject_and_delete").exists()
    assert client.get(f"/admin/imaging/heldinstance/{second.id}/delete/").status_code == 403


def test_a_study_conflict_cannot_be_filed_there(admin_user, ada):
    [ours] = files_intake(
        files=[IncomingFile.from_bytes(dataset_bytes(chest_radiograph_dataset(patient=ada)))],
        source=ImageSource.C_STORE,
    )
    held = take(
        dataset_bytes(chest_radiograph_dataset(patient_id="NEW-1", study_uid=ours.image.study.study_instance_uid))
    ).held
    with pytest.raises(ValidationError, match="belongs to another patient"):
        held_instance_file(held=held, user=admin_user)
    held.refresh_from_db()
    assert held.status == "held" and Image.objects.count() == 1


def test_import_dicom_and_stow_rs_hold_it_and_say_so(client, staff_user, ada):
    client.force_login(staff_user)
    response = client.post(
        "/dicom/import/",
        {"files": [SimpleUploadedFile("x.dcm", impostor(), content_type="application/dicom")]},
        HTTP_ACCEPT="application/json",
    )
    [result] = response.json()["results"]
    assert not result["ok"] and "held for an administrator" in result["error"]
    api = APIClient()
    api.force_authenticate(staff_user)
    body, content_type = build_multipart_related([("application/dicom", impostor())], root_type="application/dicom")
    response = api.post("/dicomweb/studies", data=body, content_type=content_type)
    assert response.status_code == 409
    assert Dataset.from_json(response.content.decode()).FailedSOPSequence[0].FailureReason == 0xC000
    assert HeldInstance.objects.count() == 2 and not Image.objects.exists()
    held_rows = AuditEvent.objects.filter(object_type="imaging.heldinstance", action="create", actor=staff_user)
    assert {e.detail for e in held_rows} == {"dicom import held", "STOW-RS held"}


def test_every_admin_page_of_a_held_instance_is_audited(client, admin_user, ada):
    client.force_login(admin_user)
    held = take(impostor()).held
    base = "/admin/imaging/heldinstance/"
    for url, detail in [
        (f"{base}?q={ada.mrn}", "search"),
        (f"{base}{held.id}/change/", ""),
        (f"{base}{held.id}/history/", "history"),
    ]:
        before = AuditEvent.objects.latest("id").id if AuditEvent.objects.exists() else 0
        assert client.get(url).status_code == 200, url
        [event] = AuditEvent.objects.filter(id__gt=before)
        assert (event.action, event.detail, event.object_id, event.patient_id) == ("read", detail, str(held.id), ada.id)
    assert b"held/" not in client.get(f"{base}{held.id}/change/").content  # no unaudited link to the file
