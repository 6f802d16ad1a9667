"""A database outage answers 503 with a clear message, for the API and for pages; a body over its limit 413."""

import pytest
from django.db import OperationalError

from web.middleware import DatabaseUnavailableMiddleware

pytestmark = pytest.mark.django_db


def test_an_api_request_during_a_database_outage_gets_503_in_the_api_error_shape(api_client, monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')

    monkeypatch.setattr("api.authentication.ApiTokenAuthentication.authenticate", down)
    response = api_client.get("/api/v1/patients/", HTTP_AUTHORIZATION="Bearer whatever")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    error = response.json()["error"]
    assert error["status"] == 503 and error["code"] == "database_unavailable"
    assert "database is unavailable" in error["message"]


def test_a_page_during_a_database_outage_gets_a_503_page(client, staff_user, monkeypatch):
    client.force_login(staff_user)

    def down(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("django.db.models.query.QuerySet._fetch_all", down)
    response = client.get("/patients/")

    assert response.status_code == 503
    assert b"database is unavailable" in response.content


def test_other_errors_are_left_alone(rf):
    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    assert middleware.process_exception(rf.get("/api/v1/patients/"), ValueError("boom")) is None


class UnreadBody:
    """A request body that fails the test if anything reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = read


def _post_unread(client, path: str, *, content_type: str, length: int):
    return client.generic(
        "POST", path, b"", **{"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(length), "wsgi.input": UnreadBody()}
    )


def test_a_json_or_form_body_over_the_memory_limit_is_refused_unread(client, staff_user, settings):
    # Forms and JSON are parsed in memory, DRF's parsers included: the small limit holds for them.
    client.force_login(staff_user)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = _post_unread(client, "/api/v1/patients/", content_type="application/json", length=1001)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    response = _post_unread(client, "/patients/new/", content_type="application/x-www-form-urlencoded", length=1001)
    assert response.status_code == 413 and b"the limit is 1,000 bytes" in response.content


def test_a_multipart_body_may_be_larger_up_to_the_request_limit(client, staff_user, settings):
    client.force_login(staff_user)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.MEDPORTAL_MAX_REQUEST_BYTES = 5000
    response = _post_unread(client, "/patients/new/", content_type="multipart/form-data; boundary=x", length=5001)
    assert response.status_code == 413 and b"the limit is 5,000 bytes" in response.content


def test_a_dicom_path_takes_one_instance_of_the_dicom_limit(client, staff_user, settings):
    client.force_login(staff_user)
    settings.MEDPORTAL_MAX_REQUEST_BYTES = 5000
    settings.MEDPORTAL_MAX_DICOM_BYTES = 9000
    limit = 9000 + 1024 * 1024
    for path in ("/dicom/import/", "/dicomweb/studies"):
        response = _post_unread(client, path, content_type="multipart/related; boundary=x", length=limit + 1)
        assert response.status_code == 413 and f"the limit is {limit:,} bytes".encode() in response.content
    # Elsewhere (the upload page, the REST upload) the request limit stays as it is.
    response = _post_unread(
        client, "/api/v1/studies/x/images/", content_type="multipart/form-data; boundary=x", length=5001
    )
    assert response.status_code == 413 and b"the limit is 5,000 bytes" in response.content
