import pytest

from tests.api.helpers import make_prediction

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/images/?uploaded_before=3727-02-22T05:08:25.446584%2B17:07",
        "/api/v1/predictions/?queued_before=8771-05-18T23:53:22-21:21",
        "/api/v1/reviews/?reviewed_before=9757-09-29T05:37:58.12-16:21",
        "/api/v1/patients/?created_after=2000-01-01T00:00:00%2B23:59",
    ],
)
def test_offsets_beyond_what_postgresql_takes_are_compared_in_utc(client_for_role, path):
    make_prediction()
    response = client_for_role("admin").get(path)
    assert response.status_code == 200, response.content[:300]


def test_a_bound_past_the_last_representable_moment_is_a_field_error(client_for_role):
    response = client_for_role("admin").get("/api/v1/images/?uploaded_before=9999-12-31T23:00:00-23:00")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"uploaded_at": ["The date and time is out of range."]}


def test_date_range_filter_selects_rows(client_for_role):
    prediction = make_prediction()
    client = client_for_role("staff")
    moment = prediction.queued_at.isoformat().replace("+00:00", "Z")
    assert client.get("/api/v1/predictions/", {"queued_after": moment}).json()["count"] == 1
    assert client.get("/api/v1/predictions/", {"queued_before": "2000-01-01T00:00:00Z"}).json()["count"] == 0
