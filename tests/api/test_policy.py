"""The pages, the API, DICOMweb and the admin answer each role as accounts.policy says, and agree with each other.

For every role and every (resource, act) of the table, each door of each interface is tried: the
pages, the API and DICOMweb by request, the admin through its ModelAdmins' permission methods (only
administrators sign in to the admin at all, so the per-model rules are checked for every role there).
"""

import io

import pydicom
import pytest
from django.contrib import admin
from django.test import RequestFactory

from accounts.policy import POLICY, Act, PolicyAdminMixin, Resource, allowed_roles
from accounts.roles import Role
from audit.models import AuditEvent
from imaging.intake import IncomingFile, files_intake
from imaging.models import DicomPeer, HeldInstance, Image, ImageSource, Study
from inference.models import Prediction, Review, ReviewAmendment, ReviewDecision
from inference.services import review_create
from patients.models import Patient
from tests.api.helpers import make_prediction as make_finished_prediction
from tests.dicom.support import shipped_bytes
from tests.factories import UserFactory
from tests.web.conftest import make_aimodel, make_prediction

pytestmark = pytest.mark.django_db

ROLES = ("staff", "radiologist", "admin", "roleless")

RESOURCE_MODELS = {
    Resource.PATIENT: Patient,
    Resource.STUDY: Study,
    Resource.IMAGE: Image,
    Resource.PREDICTION: Prediction,
    Resource.REVIEW: Review,
    Resource.AUDIT: AuditEvent,
    Resource.HELD_INSTANCE: HeldInstance,
    Resource.DICOM_PEER: DicomPeer,
}

# Where an admin page is narrower than the table, and why. It may refuse what the table allows, never the reverse.
ADMIN_NARROWER = {
    (Resource.REVIEW, Act.WRITE): "amended only by its radiologist, with a reason, on the review page",
}


def _allowed(response) -> bool:
    assert response.status_code != 500
    if response.status_code == 302:
        return not response.url.startswith("/login/")
    return response.status_code not in (401, 403)


@pytest.fixture
def records(admin_user):
    [intake] = files_intake(files=[IncomingFile.from_bytes(shipped_bytes("CT_small.dcm"))], source=ImageSource.STOW_RS)
    image = intake.image
    prediction = make_prediction(image, make_aimodel(modalities=["CT"]))
    review = Review.objects.create(
        prediction=prediction, decision=ReviewDecision.AGREE, final_label=prediction.label, reviewer=admin_user
    )
    dataset = pydicom.dcmread(io.BytesIO(shipped_bytes("CT_small.dcm")), stop_before_pixels=True)
    event = AuditEvent.objects.create(action="read", interface="system", object_type="test")
    return {
        Resource.PATIENT: image.study.patient,
        Resource.STUDY: image.study,
        Resource.IMAGE: image,
        Resource.PREDICTION: prediction,
        Resource.REVIEW: review,
        Resource.AUDIT: event,
        Resource.HELD_INSTANCE: HeldInstance.objects.create(
            sha256="0" * 64,
            size_bytes=1,
            sop_instance_uid="1.2.3",
            study_instance_uid="1.2",
            patient=image.study.patient,
            reason="patient_mismatch",
            detail="test",
            source="c-store",
        ),
        Resource.DICOM_PEER: DicomPeer.objects.create(ae_title="CT1", network="10.1.2.3/32"),
        "study_uid": dataset.StudyInstanceUID,
        "series_uid": dataset.SeriesInstanceUID,
        "instance_uid": dataset.SOPInstanceUID,
    }


def _http_doors(client, r) -> dict[tuple[Resource, Act], list]:
    """Each door of the pages, the API and DICOMweb, by the (resource, act) it opens."""
    patient, study, image = r[Resource.PATIENT], r[Resource.STUDY], r[Resource.IMAGE]
    prediction, review, event = r[Resource.PREDICTION], r[Resource.REVIEW], r[Resource.AUDIT]
    study_url = f"/dicomweb/studies/{r['study_uid']}"
    instance_url = f"{study_url}/series/{r['series_uid']}/instances/{r['instance_uid']}"
    get, post = client.get, client.post
    return {
        (Resource.PATIENT, Act.SEARCH): [
            lambda: get("/patients/?q=a"),
            lambda: get("/api/v1/patients/?search=a"),
            lambda: get("/dicomweb/studies?PatientID=*"),
            lambda: get("/dicomweb/studies?PatientName=a*"),
        ],
        (Resource.PATIENT, Act.READ): [
            lambda: get(f"/patients/{patient.id}/"),
            lambda: get(f"/api/v1/patients/{patient.id}/"),
            lambda: get(f"/review/{study.id}/priors/"),  # the patient's earlier studies
        ],
        (Resource.PATIENT, Act.WRITE): [
            lambda: get("/patients/new/"),
            lambda: get(f"/patients/{patient.id}/edit/"),
            lambda: post("/api/v1/patients/", {}, format="json"),
            lambda: client.patch(f"/api/v1/patients/{patient.id}/", {}, format="json"),
        ],
        (Resource.STUDY, Act.SEARCH): [
            lambda: get("/api/v1/studies/"),
            lambda: get("/api/v1/worklist/"),
            lambda: get("/dicomweb/studies"),
        ],
        (Resource.STUDY, Act.READ): [
            lambda: get(f"/studies/{study.id}/"),
            lambda: get(f"/studies/{study.id}/results/"),
            lambda: get(f"/studies/{study.id}/report/"),
            lambda: get(f"/studies/{study.id}/export.zip"),
            lambda: get(f"/api/v1/studies/{study.id}/"),
            lambda: get(f"{study_url}/series"),
        ],
        (Resource.STUDY, Act.WRITE): [
            lambda: get(f"/patients/{patient.id}/studies/new/"),
            lambda: post("/api/v1/studies/", {}, format="json"),
            lambda: client.patch(f"/api/v1/studies/{study.id}/", {}, format="json"),
        ],
        (Resource.IMAGE, Act.SEARCH): [
            lambda: get("/api/v1/images/"),
            lambda: get(f"/api/v1/studies/{study.id}/images/"),
            lambda: get(f"{study_url}/instances"),
        ],
        (Resource.IMAGE, Act.READ): [
            lambda: get(f"/images/{image.id}/thumbnail.png"),
            lambda: get(f"/images/{image.id}/display.png"),
            lambda: get(f"/images/{image.id}/render.png"),
            lambda: get(f"/api/v1/images/{image.id}/"),
            lambda: get(f"/api/v1/images/{image.id}/file/"),
            lambda: get(f"/api/v1/images/{image.id}/render/"),
            lambda: get(study_url),
            lambda: get(f"{instance_url}/metadata"),
            lambda: get(f"{instance_url}/frames/1"),
        ],
        (Resource.IMAGE, Act.WRITE): [
            lambda: post(f"/studies/{study.id}/upload/", {}),
            lambda: get("/dicom/import/"),
            lambda: post(f"/api/v1/studies/{study.id}/images/", {}),
            lambda: post("/dicomweb/studies", b"", content_type="multipart/related; type=application/dicom"),
        ],
        (Resource.PREDICTION, Act.SEARCH): [lambda: get("/api/v1/predictions/")],
        (Resource.PREDICTION, Act.READ): [
            lambda: get(f"/api/v1/predictions/{prediction.id}/"),
            lambda: get(f"/api/v1/predictions/{prediction.id}/report/"),
            lambda: get(f"/predictions/{prediction.id}/report.dcm"),
            lambda: get(f"/predictions/{prediction.id}/heatmap.png"),
        ],
        (Resource.PREDICTION, Act.WRITE): [
            lambda: post(f"/api/v1/studies/{study.id}/rerun/", {}, format="json"),
            lambda: post(f"/api/v1/images/{image.id}/rerun/", {}, format="json"),
        ],
        (Resource.REVIEW, Act.SEARCH): [lambda: get("/api/v1/reviews/")],
        (Resource.REVIEW, Act.READ): [
            lambda: get(f"/api/v1/reviews/{review.id}/"),
            lambda: get(f"/api/v1/reviews/{review.id}/amendments/"),
        ],
        # The worklist and its polled rows are the queue of reviews to write.
        (Resource.REVIEW, Act.WRITE): [
            lambda: get("/worklist/?q=a"),
            lambda: get("/worklist/rows/?q=a"),
            lambda: get(f"/review/{study.id}/"),
            lambda: get(f"/review/{study.id}/agree-all/"),
            lambda: post("/api/v1/reviews/", {}, format="json"),
            lambda: post(f"/api/v1/reviews/{review.id}/amendments/", {}, format="json"),
        ],
        (Resource.AUDIT, Act.SEARCH): [lambda: get("/api/v1/audit-events/")],
        (Resource.AUDIT, Act.READ): [lambda: get(f"/api/v1/audit-events/{event.id}/")],
    }


def _admin_answer(model_admin, request, act: Act, obj) -> bool:
    return {
        Act.SEARCH: lambda: model_admin.has_view_permission(request),
        Act.READ: lambda: model_admin.has_view_permission(request, obj),
        Act.WRITE: lambda: model_admin.has_change_permission(request, obj),
        Act.DELETE: lambda: model_admin.has_delete_permission(request, obj),
    }[act]()


@pytest.mark.parametrize("role", ROLES)
def test_every_interface_follows_the_policy(client_for_role, user_for_role, role, records):
    client = client_for_role(role)
    request = RequestFactory().get("/admin/")
    request.user = user_for_role(role)
    disagreements = []
    http_doors = _http_doors(client, records)
    for resource in Resource:
        model_admin = admin.site._registry[RESOURCE_MODELS[resource]]
        assert isinstance(model_admin, PolicyAdminMixin), resource
        for act in Act:
            roles = allowed_roles(resource, act)
            expected = role != "roleless" and (Role(role) in roles or (role == "admin" and bool(roles)))
            answers = [_allowed(door()) for door in http_doors.get((resource, act), [])]
            if answers != [expected] * len(answers):
                disagreements.append((resource, act, "pages/API/DICOMweb", answers))
            in_admin = _admin_answer(model_admin, request, act, records[resource])
            if in_admin != expected and not ((resource, act) in ADMIN_NARROWER and not in_admin):
                disagreements.append((resource, act, "admin", in_admin))
    assert disagreements == [], role
    # Only administrators sign in to the admin at all.
    assert admin.site.has_permission(request) == (role == "admin")


def test_every_pair_of_the_table_has_a_door_outside_the_admin_or_is_admin_only(client_for_role, records):
    doors = _http_doors(client_for_role("admin"), records)
    admin_only = {(resource, Act.DELETE) for resource in (Resource.PATIENT, Resource.STUDY, Resource.IMAGE)}
    # Reconciling held DICOM instances is the admin's work alone.
    admin_only |= {(Resource.HELD_INSTANCE, act) for act in (Act.SEARCH, Act.READ, Act.WRITE)}
    # So is the receiver's allow-list.
    admin_only |= {(Resource.DICOM_PEER, act) for act in Act}
    assert set(POLICY) - set(doors) == admin_only


def test_nobody_may_delete_reviews_ai_outputs_or_audit_records():
    assert allowed_roles(Resource.REVIEW, Act.DELETE) == ()
    assert allowed_roles(Resource.PREDICTION, Act.DELETE) == ()
    assert allowed_roles(Resource.AUDIT, Act.DELETE) == ()
    assert allowed_roles(Resource.AUDIT, Act.WRITE) == ()


@pytest.mark.parametrize("who", ["staff", "radiologist", "admin", "author"])
def test_only_the_author_amends_a_review_on_the_page_and_the_api(client_for_role, user_for_role, who):
    author = UserFactory(role="radiologist")
    prediction = make_finished_prediction(label="pneumonia")
    review = review_create(prediction=prediction, reviewer=author, decision="agree")
    client = client_for_role(who) if who != "author" else client_for_role("anonymous")
    if who == "author":
        client.force_login(author)
    change = {"decision": "override", "final_label": "normal"}

    api = client.post(f"/api/v1/reviews/{review.id}/amendments/", {**change, "reason": "API."}, format="json")
    page = client.post(
        f"/review/{prediction.image.study_id}/",
        {"prediction": str(prediction.id), "amend": "1", **{f"amend-{k}": v for k, v in change.items()}}
        | {"amend-reason": "Page."},
    )

    if who == "author":
        assert api.status_code == 201 and page.status_code in (200, 302)
        assert list(ReviewAmendment.objects.values_list("reason", flat=True)) == [
            "API."
        ]  # the page then changed nothing: refused
    else:
        assert (api.status_code, page.status_code) == (403, 403)
        assert not ReviewAmendment.objects.exists()
