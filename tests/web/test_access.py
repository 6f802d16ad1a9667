import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_login_page_renders_and_signs_in(client, staff_user):
    page = client.get(reverse("pages:login"))
    assert page.status_code == 200
    assert b'name="username"' in page.content

    response = client.post(reverse("pages:login"), {"username": "staff", "password": "correct-horse-battery"})
    assert response.status_code == 302
    assert response.url == reverse("pages:home")
    assert client.get(reverse("pages:home")).status_code == 200


def test_wrong_password_shows_an_error_and_stays_signed_out(client, staff_user):
    response = client.post(reverse("pages:login"), {"username": "staff", "password": "wrong"})
    assert response.status_code == 200
    assert b"correct username and password" in response.content
    assert client.get(reverse("pages:patient-list")).status_code == 302


def test_logout_needs_post_and_signs_out(staff_client):
    response = staff_client.post(reverse("pages:logout"))
    assert response.status_code == 302
    assert response.url == reverse("pages:login")
    assert staff_client.get(reverse("pages:patient-list")).status_code == 302


def test_anonymous_user_is_sent_to_login(client, study):
    for url in (reverse("pages:home"), reverse("pages:patient-list"), reverse("pages:study-detail", args=[study.id])):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("pages:login") + "?next=")


def test_wrong_role_gets_a_clear_403_page(client_for, roleless_user, radiologist_user):
    response = client_for(radiologist_user).get(reverse("pages:patient-create"))
    assert response.status_code == 403
    text = response.content.decode()
    assert "You cannot open this page" in text
    assert "staff role" in text
    assert "radiologist" in text  # says who is signed in

    response = client_for(roleless_user).get(reverse("pages:patient-list"))
    assert response.status_code == 403
    assert "You cannot open this page" in response.content.decode()


def test_admin_passes_every_role_check(client_for, admin_user, study):
    client = client_for(admin_user)
    assert client.get(reverse("pages:patient-list")).status_code == 200
    assert client.get(reverse("pages:study-detail", args=[study.id])).status_code == 200


def test_dashboard_tells_a_user_without_role_what_to_do(client_for, roleless_user):
    response = client_for(roleless_user).get(reverse("pages:home"))
    assert response.status_code == 200
    assert "no role yet" in response.content.decode()


def test_an_expired_form_gets_a_clear_page(staff_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    response = client.post(reverse("pages:patient-create"), {"mrn": "X", "family_name": "Y", "sex": "U"})
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()
