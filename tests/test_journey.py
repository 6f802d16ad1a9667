"""The whole journey against the real database, broker and a real `celery worker` process."""

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from imaging.models import Study, StudyStatus
from inference.models import AIModel
from tests.conftest import DATASETS, SAMPLES
from tests.support.workers import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def validation_chest_xray() -> tuple[str, bytes]:
    """A real chest X-ray from the validation split: straight from the data set when it is here,
    otherwise the copy of one of its items that ships in samples/."""
    npz = DATASETS / "pneumoniamnist" / "pneumoniamnist.npz"
    if npz.exists():
        with np.load(npz) as data:
            pixels = data["val_images"][11]
        buffer = io.BytesIO()
        PILImage.fromarray(pixels).save(buffer, format="PNG")
        return "pneumoniamnist-val-11.png", buffer.getvalue()
    return "cxr-pneumonia-2.png", (SAMPLES / "cxr-pneumonia-2.png").read_bytes()


def test_register_patient_open_study_upload_and_get_the_ai_second_opinion(
    celery_worker, shipped_models, api_client, staff_user
):
    api_client.force_authenticate(staff_user)
    pneumonia = AIModel.objects.get(name="cxr-pneumonia", status="active")

    # 1. A patient and a chest X-ray study.
    patient = api_client.post(
        "/api/v1/patients/",
        {"mrn": "J-0001", "family_name": "Journey", "given_name": "Jo", "birth_date": "2018-05-01", "sex": "F"},
        format="json",
    )
    assert patient.status_code == 201, patient.content
    study = api_client.post(
        "/api/v1/studies/",
        {
            "patient": patient.json()["id"],
            "accession_number": "J-ACC-1",
            "modality": "CR",
            "body_part": "CHEST",
            "priority": 2,
            "description": "Cough and fever",
        },
        format="json",
    )
    assert study.status_code == 201, study.content
    study_id = study.json()["id"]

    # 2. A real chest X-ray from the validation split.
    name, data = validation_chest_xray()
    upload = api_client.post(f"/api/v1/studies/{study_id}/images/", {"file": _named(name, data)}, format="multipart")
    assert upload.status_code == 201, upload.content
    [image] = upload.json()["images"]
    queued = {p["model"]["name"]: p["id"] for p in image["predictions"]}
    assert "cxr-pneumonia" in queued  # both chest models run when both are shipped
    assert set(queued) == {m.name for m in shipped_models if "CR" in m.modalities and m.body_part == "CHEST"}

    # 3. Poll the API until every second opinion is back.
    def all_finished():
        results = [api_client.get(f"/api/v1/predictions/{pid}/").json() for pid in queued.values()]
        return results if all(r["status"] in ("succeeded", "failed") for r in results) else None

    results = wait_for(all_finished, timeout=240, message=f"No result in time:\n{celery_worker.log()[-4000:]}")

    # 4. The stored label is one of the model's labels, probabilities sum to 1, the version is recorded.
    for result in results:
        model = AIModel.objects.get(id=result["model"]["id"])
        if min(model.input_size) > 28:
            # A model made for larger radiographs refuses a 28×28 image rather than guess.
            assert result["status"] == "failed" and result["error"].startswith("Not run"), result
            continue
        assert result["status"] == "succeeded", result
        assert result["label"] in model.labels
        assert set(result["probabilities"]) == set(model.labels)
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert result["confidence"] == pytest.approx(max(result["probabilities"].values()), abs=1e-6)
        assert result["model"]["version"] == model.version
    assert next(r for r in results if r["model"]["id"] == str(pneumonia.id))["model"]["version"] == pneumonia.version
    wait_for(lambda: Study.objects.get(id=study_id).status == StudyStatus.AI_DONE)


def _named(name: str, data: bytes):
    return SimpleUploadedFile(name, data, content_type="image/png")
