"""Every endpoint x every method x every role: allowed, 401 or 403, and never a 500."""

import pytest

from accounts.roles import Role
from audit.models import AuditEvent
from inference.models import Review
from tests.api.helpers import make_aimodel, make_image, make_prediction
from tests.factories import PatientFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db

ALL = ("staff", "radiologist", "admin")
STAFF = ("staff", "admin")
RADIOLOGIST = ("radiologist", "admin")
ADMIN = ("admin",)

# (method, path template, roles allowed). Allowed requests may still fail validation (400) or find
# nothing (404); what matters here is that they pass the role check.
MATRIX = [
    ("get", "/api/v1/patients/", STAFF),  # a patient search: staff only (accounts.policy)
    ("post", "/api/v1/patients/", STAFF),
    ("get", "/api/v1/patients/{patient}/", ALL),
    ("patch", "/api/v1/patients/{patient}/", STAFF),
    ("get", "/api/v1/studies/", ALL),
    ("post", "/api/v1/studies/", STAFF),
    ("get", "/api/v1/studies/{study}/", ALL),
    ("patch", "/api/v1/studies/{study}/", STAFF),
    ("get", "/api/v1/studies/{study}/images/", ALL),
    ("post", "/api/v1/studies/{study}/images/", STAFF),
    ("post", "/api/v1/studies/{study}/rerun/", ALL),
    ("get", "/api/v1/images/", ALL),
    ("get", "/api/v1/images/{image}/", ALL),
    ("get", "/api/v1/images/{image}/file/", ALL),
    ("get", "/api/v1/images/{image}/render/", ALL),
    ("post", "/api/v1/images/{image}/rerun/", ALL),
    ("get", "/api/v1/predictions/", ALL),
    ("get", "/api/v1/predictions/{prediction}/", ALL),
    ("get", "/api/v1/predictions/{prediction}/heatmap/", ALL),
    ("get", "/api/v1/predictions/{prediction}/report/", ALL),
    ("get", "/api/v1/models/", ALL),
    ("get", "/api/v1/models/{model}/", ALL),
    ("post", "/api/v1/models/{model}/activate/", ADMIN),
    ("post", "/api/v1/models/{model}/retire/", ADMIN),
    ("get", "/api/v1/reviews/", ALL),
    ("post", "/api/v1/reviews/", RADIOLOGIST),
    ("get", "/api/v1/reviews/{review}/", ALL),
    ("get", "/api/v1/reviews/{review}/amendments/", ALL),
    # POST .../amendments/ passes the role check for radiologists, then only the review's author
    # may amend it: tests/api/test_policy.py.
    ("get", "/api/v1/worklist/", ALL),
    ("get", "/api/v1/audit-events/", ADMIN),
    ("get", "/api/v1/audit-events/{event}/", ADMIN),
    ("get", "/api/v1/schema/", ALL + ("roleless",)),
    ("get", "/api/v1/docs/", ALL + ("roleless",)),
    ("get", "/api/v1/redoc/", ALL + ("roleless",)),
]

# Methods no endpoint offers: refused for everyone, in the error shape.
UNSUPPORTED = [
    ("delete", "/api/v1/patients/{patient}/"),
    ("put", "/api/v1/studies/{study}/"),
    ("delete", "/api/v1/predictions/{prediction}/"),
    ("patch", "/api/v1/audit-events/{event}/"),
    ("delete", "/api/v1/audit-events/{event}/"),
    ("post", "/api/v1/audit-events/"),
]


@pytest.fixture
def ids():
    study = StudyFactory()
    image = make_image(study)
    prediction = make_prediction(image=image, model=make_aimodel())
    reviewed = make_prediction(image=make_image(study, color=2), model=make_aimodel(name="other"))
    review = Review.objects.create(prediction=reviewed, decision="agree", final_label="pneumonia", reviewer=_user())
    event = AuditEvent.objects.create(action="read", interface="api", object_type="patients.patient")
    return {
        "patient": PatientFactory().id,
        "study": study.id,
        "image": image.id,
        "prediction": prediction.id,
        "model": prediction.model_id,
        "review": review.id,
        "event": event.id,
    }


def _user():
    return UserFactory(role=Role.RADIOLOGIST)


@pytest.mark.parametrize(("method", "template", "allowed"), MATRIX, ids=[f"{m.upper()} {t}" for m, t, _ in MATRIX])
@pytest.mark.parametrize("role", ("anonymous", "roleless", "staff", "radiologist", "admin"))
def test_role_method_matrix(client_for_role, ids, method, template, allowed, role):
    path = template.format(**ids)
    response = getattr(client_for_role(role), method)(path, {}, format="multipart" if "images" in path else "json")
    if role == "anonymous":
        assert response.status_code == 401
    elif role in allowed:
        assert response.status_code not in (401, 403), response.content[:300]
    else:
        assert response.status_code == 403
    assert response.status_code < 500
    if response.status_code in (401, 403) and not template.endswith(("/docs/", "/redoc/")):
        assert response.json()["error"]["status"] == response.status_code


@pytest.mark.parametrize(("method", "template"), UNSUPPORTED)
@pytest.mark.parametrize("role", ("staff", "radiologist", "admin"))
def test_unsupported_methods_are_refused(client_for_role, ids, method, template, role):
    response = getattr(client_for_role(role), method)(template.format(**ids), {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["status"] == response.status_code
