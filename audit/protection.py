"""The database itself refuses to change or remove audit rows, whatever the application does.

Every table of the audit app (the audit events and the change history kept by django-simple-history)
is insert-only:

- PostgreSQL: a row trigger refuses UPDATE and DELETE, a statement trigger refuses TRUNCATE. A role
  that owns a table can still drop its triggers, so the application runs as a role that does not
  own them (docs/deployment.md).
- SQLite: triggers refuse UPDATE and DELETE (SQLite has no TRUNCATE; a DELETE without WHERE fires
  the triggers too).

The migrations install the triggers; ``audit_protection_ensure`` puts them back after every
``migrate`` where a migration rebuilt a table (SQLite rebuilds a table, dropping its triggers,
for many schema changes). Only the test settings may lift them, for the test database's flush.
"""

import contextlib
from collections.abc import Iterable, Iterator

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only (% on % refused)', TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql
"""


def _pg_statements(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()",
    ]


def _sqlite_statements(table: str) -> list[str]:
    statements = []
    for operation in ("UPDATE", "DELETE"):
        name = f"{table}_no_{operation.lower()}"
        statements += [
            f"DROP TRIGGER IF EXISTS {name}",
            f"CREATE TRIGGER {name} BEFORE {operation} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only ({operation} on {table} refused)'); END",
        ]
    return statements


def _expected_triggers(vendor: str, table: str) -> set[str]:
    if vendor == "postgresql":
        return {f"{table}_append_only", f"{table}_no_truncate"}
    if vendor == "sqlite":
        return {f"{table}_no_update", f"{table}_no_delete"}
    return set()


def _existing_triggers(connection: BaseDatabaseWrapper, table: str) -> set[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal AND tgenabled <> 'D'",
                [table],
            )
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [table])
        return {row[0] for row in cursor.fetchall()}


def audit_tables_protect(*, connection: BaseDatabaseWrapper, tables: Iterable[str]) -> None:
    """Install (or reinstall) the triggers that make ``tables`` insert-only. Safe to run again."""
    if connection.vendor == "postgresql":
        statements = [PG_FUNCTION]
        for table in tables:
            statements += _pg_statements(table)
    elif connection.vendor == "sqlite":
        statements = [statement for table in tables for statement in _sqlite_statements(table)]
    else:
        raise NotImplementedError(f"No append-only protection for the {connection.vendor} backend.")
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)  # no params: the PL/pgSQL body has a literal %


def audit_tables_unprotected_missing(*, connection: BaseDatabaseWrapper, tables: Iterable[str]) -> list[str]:
    """The tables among ``tables`` that lack one of their triggers."""
    return [
        table
        for table in tables
        if not _expected_triggers(connection.vendor, table) <= _existing_triggers(connection, table)
    ]


def audit_protection_ensure(*, connection: BaseDatabaseWrapper, tables: Iterable[str]) -> list[str]:
    """Reinstall the triggers of the existing ``tables`` that lost them; returns those tables."""
    existing = set(connection.introspection.table_names())
    missing = audit_tables_unprotected_missing(connection=connection, tables=[t for t in tables if t in existing])
    if missing:
        audit_tables_protect(connection=connection, tables=missing)
    return missing


@contextlib.contextmanager
def audit_tables_unlocked(*, connection: BaseDatabaseWrapper, tables: Iterable[str]) -> Iterator[None]:
    """Lift the protection inside one transaction (only the test database's flush does this).

    PostgreSQL: triggers do not fire under ``session_replication_role = replica``, which only a
    superuser may set, so the application's role cannot do this. SQLite: the triggers are dropped and
    put back before the block ends. Either way, an error inside rolls the lifting back with it.
    """
    tables = list(tables)
    with transaction.atomic(using=connection.alias):
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL session_replication_role = replica")
            else:
                for table in tables:
                    expected = _expected_triggers(connection.vendor, table)
                    for name in sorted(_existing_triggers(connection, table) & expected):
                        cursor.execute(f"DROP TRIGGER {name}")
        yield
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL session_replication_role = origin")
        else:
            audit_tables_protect(connection=connection, tables=tables)
