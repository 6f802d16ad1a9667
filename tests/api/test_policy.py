"""The pages, the API and DICOMweb answer each role as accounts.policy says, and agree with each other."""

import pytest

from accounts.policy import Act, Resource, allowed_roles
from accounts.roles import Role
from inference.models import ReviewAmendment
from inference.services import review_create
from tests.api.helpers import make_prediction
from tests.factories import StudyFactory, UserFactory

pytestmark = pytest.mark.django_db

ROLES = ("staff", "radiologist", "admin")


def _allowed(status: int) -> bool:
    assert status != 500
    return status not in (302, 401, 403)


@pytest.mark.parametrize("role", ROLES)
def test_every_interface_follows_the_policy(client_for_role, role):
    client = client_for_role(role)
    study = StudyFactory()
    patient = study.patient
    doors = {
        (Resource.PATIENT, Act.SEARCH): [
            client.get("/patients/?q=a"),
            client.get("/api/v1/patients/?search=a"),
            client.get("/dicomweb/studies?PatientID=*"),
            client.get("/dicomweb/studies?PatientName=a*"),
        ],
        (Resource.PATIENT, Act.READ): [
            client.get(f"/patients/{patient.id}/"),
            client.get(f"/api/v1/patients/{patient.id}/"),
            client.get(f"/review/{study.id}/priors/"),  # the patient's earlier studies
        ],
        (Resource.PATIENT, Act.WRITE): [
            client.get("/patients/new/"),
            client.post("/api/v1/patients/", {}, format="json"),
        ],
        # The worklist and its polled rows are the queue of reviews to write.
        (Resource.REVIEW, Act.WRITE): [
            client.get("/worklist/?q=a"),
            client.get("/worklist/rows/?q=a"),
        ],
        (Resource.STUDY, Act.READ): [
            client.get(f"/studies/{study.id}/"),
            client.get(f"/api/v1/studies/{study.id}/"),
        ],
    }
    for (resource, act), responses in doors.items():
        expected = Role(role) in allowed_roles(resource, act) or role == "admin"
        answers = [_allowed(response.status_code) for response in responses]
        assert answers == [expected] * len(answers), (resource, act, [r.status_code for r in responses])


def test_nobody_may_delete_reviews_or_audit_records():
    assert allowed_roles(Resource.REVIEW, Act.DELETE) == ()
    assert allowed_roles(Resource.AUDIT, Act.DELETE) == ()
    assert allowed_roles(Resource.AUDIT, Act.WRITE) == ()


@pytest.mark.parametrize("who", ["staff", "radiologist", "admin", "author"])
def test_only_the_author_amends_a_review_on_the_page_and_the_api(client_for_role, user_for_role, who):
    author = UserFactory(role="radiologist")
    prediction = make_prediction(label="pneumonia")
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
