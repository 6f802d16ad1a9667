"""The database refuses to change or remove audit events and change history, on every backend."""

import io
import re
import uuid
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError

from audit.models import AuditEvent, HistoricalPatient, HistoricalStudy
from audit.protection import audit_protection_ensure, audit_tables_unprotected_missing
from audit.services import audit_record
from patients.services import patient_update
from tests.factories import PatientFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db

TABLES = ["audit_auditevent", "audit_historicalpatient", "audit_historicalstudy"]
on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="TRUNCATE exists on PostgreSQL only")


@pytest.fixture
def rows():
    """One row in each protected table."""
    patient = PatientFactory()
    StudyFactory(patient=patient)
    audit_record(actor=None, action="read", obj=patient, interface="api")
    return {table: _count(table) for table in TABLES}


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        return cursor.fetchone()[0]


def _execute_atomically(sql: str) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)


def _refused(sql: str) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)


def test_every_table_of_the_audit_app_is_protected():
    assert sorted(apps.get_app_config("audit").append_only_tables()) == TABLES
    assert audit_tables_unprotected_missing(connection=connection, tables=TABLES) == []


@pytest.mark.parametrize("table", TABLES)
def test_update_is_refused(rows, table):
    column = "action" if table == "audit_auditevent" else "history_type"
    _refused(f"UPDATE {table} SET {column} = 'x'")
    assert _count(table) == rows[table]


@pytest.mark.parametrize("table", TABLES)
def test_delete_is_refused(rows, table):
    _refused(f"DELETE FROM {table}")
    assert _count(table) == rows[table] >= 1


@on_postgresql
@pytest.mark.parametrize("table", TABLES)
def test_truncate_is_refused_on_postgresql(rows, table):
    with connection.cursor() as cursor:
        # Run the deferred foreign-key checks of the rows just made; TRUNCATE refuses to run before them.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    _refused(f"TRUNCATE {table} CASCADE")
    assert _count(table) == rows[table] >= 1


def test_history_cannot_be_deleted_or_rewritten_through_the_orm(rows):
    patient = PatientFactory(family_name="Before")
    patient_update(patient=patient, family_name="After")
    with pytest.raises(DatabaseError), transaction.atomic():
        HistoricalPatient.objects.filter(id=patient.id).delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        HistoricalStudy.objects.update(description="rewritten")
    assert [h.family_name for h in HistoricalPatient.objects.filter(id=patient.id).order_by("history_id")] == [
        "Before",
        "After",
    ]


def test_a_user_named_in_the_history_cannot_be_deleted(rows):

    user = UserFactory(username="changer")
    patient = PatientFactory()
    patient._history_user = user
    patient_update(patient=patient, given_name="Changed")
    assert HistoricalPatient.objects.filter(id=patient.id, history_user=user).exists()
    with pytest.raises(ProtectedError):
        user.delete()
    assert HistoricalPatient.objects.filter(id=patient.id, history_user=user).exists()


def test_a_rebuilt_table_gets_its_triggers_back():
    # SQLite rebuilds a table for many schema changes, which drops its triggers; migrate puts them back.
    trigger = "audit_historicalstudy_no_delete" if connection.vendor == "sqlite" else None
    with connection.cursor() as cursor:
        if trigger:
            cursor.execute(f"DROP TRIGGER {trigger}")
        else:
            cursor.execute("DROP TRIGGER audit_historicalstudy_append_only ON audit_historicalstudy")
    assert audit_tables_unprotected_missing(connection=connection, tables=TABLES) == ["audit_historicalstudy"]
    assert audit_protection_ensure(connection=connection, tables=TABLES) == ["audit_historicalstudy"]
    assert audit_tables_unprotected_missing(connection=connection, tables=TABLES) == []


def test_flush_cannot_empty_the_trail_outside_the_tests(rows, settings):
    settings.MEDPORTAL_AUDIT_FLUSH_ALLOWED = False
    with pytest.raises(CommandError):
        call_command("flush", interactive=False, verbosity=0)
    assert AuditEvent.objects.count() == rows["audit_auditevent"] >= 1
    assert _count("audit_historicalpatient") == rows["audit_historicalpatient"]


@pytest.mark.django_db(transaction=True)
def test_the_test_flush_empties_the_trail_and_leaves_it_protected():
    audit_record(actor=None, action="read", obj=PatientFactory(), interface="api")
    call_command("flush", interactive=False, verbosity=0)
    assert _count("audit_auditevent") == _count("audit_historicalpatient") == 0
    assert audit_tables_unprotected_missing(connection=connection, tables=TABLES) == []


def _documented_role_sql(*, role: str, database: str, owner: str) -> str:
    text = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    section = text[text.index("## Database roles") :]
    sql = re.search(r"```sql\n(.*?)```", section, re.DOTALL).group(1)
    sql = sql.replace("medportal_app", role)
    sql = sql.replace("DATABASE medportal ", f"DATABASE {database} ").replace("ROLE medportal ", f"ROLE {owner} ")
    assert "medportal " not in sql.replace(role, "")
    return sql


def _set_up_role_with_the_documented_sql(role: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), current_user")
        database, owner = cursor.fetchone()
        cursor.execute(_documented_role_sql(role=role, database=database, owner=owner))


def _set_up_role_with_the_command(role: str) -> None:
    call_command("audit_app_role", role=role, password_env="TEST_APP_ROLE_PASSWORD", stdout=io.StringIO())
    call_command("audit_app_role", role=role, stdout=io.StringIO())  # again: nothing changes, nothing fails


@on_postgresql
@pytest.mark.parametrize("set_up", [_set_up_role_with_the_documented_sql, _set_up_role_with_the_command])
def test_the_application_role_can_append_but_never_wipe(rows, set_up, monkeypatch):
    # Roles are cluster-wide, but CREATE ROLE is transactional: the test's rollback removes it.
    monkeypatch.setenv("TEST_APP_ROLE_PASSWORD", uuid.uuid4().hex)
    role = f"medportal_app_test_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    set_up(role)
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {role}")
    try:
        patient = PatientFactory()
        patient_update(patient=patient, family_name="Appended")
        audit_record(actor=None, action="read", obj=patient, interface="api")
        for table in TABLES:
            for sql in (
                f"UPDATE {table} SET id = id",
                f"DELETE FROM {table}",
                f"TRUNCATE {table}",
                f"ALTER TABLE {table} DISABLE TRIGGER USER",
                f"DROP TRIGGER {table}_append_only ON {table}",
            ):
                with pytest.raises(DatabaseError, match="permission denied|must be owner"):
                    _execute_atomically(sql)
        with pytest.raises(DatabaseError, match="permission denied"):
            _execute_atomically("SET session_replication_role = replica")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
    assert _count("audit_auditevent") == rows["audit_auditevent"] + 1
    assert _count("audit_historicalpatient") == rows["audit_historicalpatient"] + 2


@on_postgresql
def test_the_command_refuses_a_superuser_role():
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        superuser = cursor.fetchone()[0]
    with pytest.raises(CommandError, match="superuser"):
        call_command("audit_app_role", role=superuser, stdout=io.StringIO())
