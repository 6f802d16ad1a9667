
"""Indexes for the patient list's order, MRN lookups and name search.

On PostgreSQL, name and MRN search (``icontains``/``istartswith``, i.e. ``UPPER(col) LIKE …``) is
served by trigram GIN indexes; SQLite has no such index type and scans its (small) table instead.
"""

import django.db.models.functions.text
from django.conf import settings
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models

TRIGRAM_INDEXES = {
    "patient_family_name_trgm": "UPPER(family_name::text)",
    "patient_given_name_trgm": "UPPER(given_name::text)",
    "patient_mrn_trgm": "UPPER(mrn::text)",
}


def trigram_indexes_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, expression in TRIGRAM_INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON patients_patient USING gin ({expression} gin_trgm_ops)"
        )
    # Statistics on the indexed expressions, so the planner sees how few rows a search matches
    # rather than walking the name index in order until it finds a page of them.
    schema_editor.execute("ANALYZE patients_patient")


def trigram_indexes_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in TRIGRAM_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):

    dependencies = [
        ('patients', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        TrigramExtension(),
        migrations.RunPython(trigram_indexes_create, trigram_indexes_drop, elidable=False),
        migrations.RemoveIndex(
            model_name='patient',
            name='patients_pa_family__a96a9c_idx',
        ),
        migrations.AddIndex(
            model_name='patient',
            index=models.Index(fields=['family_name', 'given_name', 'mrn'], name='patient_name_order'),
        ),
        migrations.AddIndex(
            model_name='patient',
            index=models.Index(django.db.models.functions.text.Upper('mrn'), name='patient_mrn_upper'),
        ),
    ]
