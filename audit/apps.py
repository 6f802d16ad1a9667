from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate

from audit.protection import audit_protection_ensure


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def append_only_tables(self) -> list[str]:
        """Every table of this app: the audit events and the change history are all insert-only."""
        return [model._meta.db_table for model in self.get_models()]

    def ready(self) -> None:
        # Connects the log in receivers, once every app is loaded (Django's place for receivers).
        from audit import logins  # noqa: F401, PLC0415

        post_migrate.connect(_protection_ensure, sender=self, dispatch_uid="audit_protection_ensure")


def _protection_ensure(sender: AuditConfig, using: str, **kwargs) -> None:
    # A migration that rebuilt an audit table (SQLite does for many changes) dropped its triggers.
    audit_protection_ensure(connection=connections[using], tables=sender.append_only_tables())
