"""Every audit table is insert-only in the database: audit events and the change history alike.

Replaces 0002 (which let SQLite DELETE audit events and left TRUNCATE and the history tables open)
with the triggers of audit.protection: UPDATE and DELETE refused on both backends, TRUNCATE refused
on PostgreSQL. History rows keep the user who made the change (PROTECT instead of SET_NULL, which
would have to UPDATE them).
"""

import importlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from audit.protection import audit_tables_protect

TABLES = ["audit_auditevent", "audit_historicalpatient", "audit_historicalstudy"]


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        schema_editor.execute("DROP TRIGGER IF EXISTS audit_auditevent_no_update_delete ON audit_auditevent")
        schema_editor.execute("DROP FUNCTION IF EXISTS audit_auditevent_append_only()")
    audit_tables_protect(connection=connection, tables=TABLES)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        else:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
    importlib.import_module("audit.migrations.0002_append_only_triggers").forwards(apps, schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0002_append_only_triggers'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='historicalpatient',
            name='history_user',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='historicalstudy',
            name='history_user',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
