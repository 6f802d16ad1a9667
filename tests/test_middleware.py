"""A database outage answers 503 with a clear message, for the API and for pages."""

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
