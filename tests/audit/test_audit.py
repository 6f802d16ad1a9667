import pytest
from django.contrib import admin as django_admin
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import ResolverMatch

from audit.access import audit_access, audit_exempt, audited
from audit.admin import AuditedAdminMixin
from audit.models import AuditAction, AuditEvent, AuditInterface, HistoricalPatient
from audit.services import audit_record, audit_record_many
from imaging.models import Study
from patients.models import Patient
from patients.services import patient_update
from tests.factories import PatientFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_audit_record_keeps_who_what_where_and_interface(rf):
    user = UserFactory(username="reader")
    patient = PatientFactory()
    request = rf.get(
        "/patients/x/", REMOTE_ADDR="192.0.2.7", HTTP_USER_AGENT="browser", HTTP_X_FORWARDED_FOR="10.0.0.1"
    )
    event = audit_record(actor=user, action=AuditAction.READ, obj=patient, interface=AuditInterface.UI, request=request)
    event.refresh_from_db()
    assert (event.actor, event.actor_username, event.patient_id) == (user, "reader", patient.id)
    assert (event.ip_address, event.forwarded_for, event.user_agent) == ("192.0.2.7", "10.0.0.1", "browser")
    assert (event.method, event.path, event.interface) == ("GET", "/patients/x/", "ui")
    assert event.occurred_at is not None


def test_events_cannot_be_changed_or_deleted_through_the_orm():
    event = audit_record(actor=None, action="read", obj=PatientFactory(), interface="api")
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(id=event.id).update(action="delete")
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()


def test_the_database_refuses_updates():
    event = audit_record(actor=None, action="read", obj=PatientFactory(), interface="api")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET action = 'delete' WHERE id = %s", [event.id])
    event.refresh_from_db()
    assert event.action == "read"


def test_the_admin_shows_events_but_offers_no_change_or_delete(client):
    admin = UserFactory(username="boss", role="admin", is_superuser=True)
    client.force_login(admin)
    event = audit_record(actor=admin, action="read", obj=PatientFactory(), interface="api")
    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get(f"/admin/audit/auditevent/?q={event.patient.mrn}").status_code == 200
    assert client.get(f"/admin/audit/auditevent/?actor__id__exact={admin.id}").status_code == 200
    page = client.get(f"/admin/audit/auditevent/{event.id}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    response = client.post(f"/admin/audit/auditevent/{event.id}/change/", {"action": "delete"})
    assert response.status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.id}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    event.refresh_from_db()
    assert event.action == "read"


def test_the_api_reads_events_for_admins_only_and_cannot_change_them(client_for_role):
    event = audit_record(actor=None, action="read", obj=PatientFactory(), interface="ui")
    admin = client_for_role("admin")
    assert admin.get(f"/api/v1/audit-events/{event.id}/").json()["action"] == "read"
    assert admin.patch(f"/api/v1/audit-events/{event.id}/", {"action": "delete"}, format="json").status_code == 405
    assert admin.delete(f"/api/v1/audit-events/{event.id}/").status_code == 405
    assert client_for_role("staff").get("/api/v1/audit-events/").status_code == 403
    event.refresh_from_db()
    assert event.action == "read"


def test_patient_history_keeps_old_values_and_who_changed_them(client_for_role, user_for_role):
    patient = PatientFactory(family_name="Old")
    response = client_for_role("staff").patch(f"/api/v1/patients/{patient.id}/", {"family_name": "New"}, format="json")
    assert response.status_code == 200
    history = HistoricalPatient.objects.filter(id=patient.id).order_by("history_date")
    assert [h.family_name for h in history] == ["Old", "New"]
    assert history.last().history_user == user_for_role("staff")
    patient_update(patient=patient, given_name="Changed")
    assert HistoricalPatient.objects.filter(id=patient.id).count() == 3


def test_admin_mixin_records_views_and_changes(rf):
    class PatientAuditedAdmin(AuditedAdminMixin, django_admin.ModelAdmin):
        fields = ("mrn", "family_name")

    site = django_admin.AdminSite(name="audit-test")
    model_admin = PatientAuditedAdmin(Patient, site)
    boss = UserFactory(username="boss", role="admin", is_superuser=True)
    patient = PatientFactory(family_name="Before")

    request = rf.get(f"/admin/patients/patient/{patient.id}/change/", REMOTE_ADDR="192.0.2.9")
    request.user = boss
    assert model_admin.change_view(request, str(patient.id)).status_code == 200
    event = AuditEvent.objects.latest("id")
    assert (event.actor, event.action, event.interface, event.patient_id) == (boss, "read", "admin", patient.id)
    assert event.ip_address == "192.0.2.9"

    class Form:
        changed_data = ["family_name"]

    patient.family_name = "After"
    model_admin.save_model(request, patient, Form(), change=True)
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.detail, event.interface) == ("update", "family_name", "admin")


def test_admin_browses_change_history_read_only(client):
    boss = UserFactory(username="boss", role="admin", is_superuser=True)
    client.force_login(boss)
    study = StudyFactory()
    for path in ("/admin/audit/historicalpatient/", "/admin/audit/historicalstudy/"):
        assert client.get(path).status_code == 200
        assert client.get(path, {"q": str(study.patient_id)}).status_code == 200
    history_id = HistoricalPatient.objects.get(id=study.patient_id).history_id
    assert client.get(f"/admin/audit/historicalpatient/{history_id}/change/").status_code == 200
    assert client.post(f"/admin/audit/historicalpatient/{history_id}/delete/", {"post": "yes"}).status_code == 403
    assert HistoricalPatient.objects.filter(history_id=history_id).exists()


def test_an_access_is_recorded_only_through_a_declared_view(rf):
    def undeclared(request):
        return None

    request = rf.get("/somewhere/")
    request.user = UserFactory(username="clerk", role="staff")
    request.resolver_match = ResolverMatch(undeclared, (), {})
    with pytest.raises(ImproperlyConfigured):
        audit_access(request, obj=PatientFactory())
    assert not AuditEvent.objects.exists()

    declared = audited(AuditInterface.UI)(lambda request: None)
    request.resolver_match = ResolverMatch(declared, (), {})
    patients = [PatientFactory(), PatientFactory()]
    audit_access(request, rows=[(patient, None) for patient in patients], detail="list")
    events = AuditEvent.objects.order_by("id")
    assert [(e.interface, e.detail, e.patient_id) for e in events] == [("ui", "list", p.id) for p in patients]

    request.resolver_match = ResolverMatch(audit_exempt("no patient data")(lambda request: None), (), {})
    with pytest.raises(ImproperlyConfigured):
        audit_access(request, obj=patients[0])


def _columns(event: AuditEvent) -> tuple:
    return (
        event.actor_id,
        event.actor_username,
        event.action,
        event.interface,
        event.object_type,
        event.object_id,
        event.patient_id,
        event.ip_address,
        event.forwarded_for,
        event.user_agent,
        event.method,
        event.path,
        event.detail,
    )


@pytest.mark.parametrize("size", [1, 3, 150])
def test_many_rows_are_one_insert_with_every_column_of_a_single_record(rf, size):
    user = UserFactory(username="reader")
    request = rf.get("/x/", REMOTE_ADDR="192.0.2.7", HTTP_USER_AGENT="browser", HTTP_X_FORWARDED_FOR="10.0.0.1")
    studies = [StudyFactory() for _ in range(size)]
    patient = studies[0].patient
    items = [(patient, None), *((study, study.patient_id) for study in studies[1:])]
    facts = {"actor": user, "action": AuditAction.READ, "interface": AuditInterface.API, "request": request}

    with CaptureQueriesContext(connection) as queries:
        assert audit_record_many(**facts, items=items, detail="list") == size
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "audit_auditevent"')]
    assert len(inserts) == len(queries.captured_queries)
    if connection.vendor == "postgresql":  # SQLite splits a statement above its parameter limit
        assert len(inserts) == 1
    written = list(AuditEvent.objects.order_by("id"))
    assert len({event.occurred_at.date() for event in written}) == 1
    for (obj, patient_of), event in zip(items, written, strict=True):
        audit_record(**facts, obj=obj, patient=patient_of, detail="list")
        single = AuditEvent.objects.latest("id")
        assert _columns(event) == _columns(single)


def test_rows_by_key_are_recorded_as_their_records_would_be(rf):
    request = rf.get("/dicomweb/studies")
    request.user = UserFactory(username="viewer")
    request.resolver_match = ResolverMatch(audited(AuditInterface.DICOMWEB)(lambda request: None), (), {})
    studies = [StudyFactory(), StudyFactory()]
    audit_access(request, rows=[(study, study.patient_id) for study in studies], detail="by instance")
    audit_access(request, rows=[(study.pk, study.patient_id) for study in studies], model=Study, detail="by key")
    by_instance = AuditEvent.objects.filter(detail="by instance").order_by("id")
    by_key = AuditEvent.objects.filter(detail="by key").order_by("id")
    assert [_columns(e)[:-1] for e in by_instance] == [_columns(e)[:-1] for e in by_key]
    assert [(e.object_type, e.object_id) for e in by_key] == [("imaging.study", str(s.pk)) for s in studies]


def test_an_anonymous_actor_and_rows_without_a_patient(rf):
    audit_record_many(
        actor=None,
        action=AuditAction.READ,
        items=[(None, None), (UserFactory(), None)],
        interface=AuditInterface.DIMSE,
        username="PEER_AE",
        address="192.0.2.9",
        detail="C-FIND",
    )
    events = AuditEvent.objects.order_by("id")
    assert [(e.actor_id, e.actor_username, e.ip_address, e.patient_id) for e in events] == [
        (None, "PEER_AE", "192.0.2.9", None)
    ] * 2
    assert [e.object_type for e in events] == ["", "accounts.user"]
    assert audit_record_many(actor=None, action=AuditAction.READ, items=[], interface=AuditInterface.DIMSE) == 0
