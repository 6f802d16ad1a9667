"""``flush`` that may empty the insert-only audit tables, where the settings allow it (tests only).

Test cases that commit (TransactionTestCase, live servers) reset the test database with ``flush``
after each test; elsewhere the database refuses to empty the audit trail, as it should.
"""

from django.apps import apps
from django.conf import settings
from django.core.management.commands import flush
from django.db import connections

from audit.protection import audit_tables_unlocked


class Command(flush.Command):
    def handle(self, **options):
        if not settings.MEDPORTAL_AUDIT_FLUSH_ALLOWED:
            return super().handle(**options)
        connection = connections[options["database"]]
        tables = apps.get_app_config("audit").append_only_tables()
        with audit_tables_unlocked(connection=connection, tables=tables):
            return super().handle(**options)
