"""Indexes for the study and image lists' orders and common filters, and QIDO-RS's order.

On PostgreSQL, the description search (``icontains``) is served by a trigram GIN index.
"""

import django.db.models.functions.text
from django.conf import settings
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models


def trigram_index_create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS study_description_trgm ON imaging_study "
            "USING gin (UPPER(description::text) gin_trgm_ops)"
        )
        # Statistics on the indexed expressions (see patients 0002).
        schema_editor.execute("ANALYZE imaging_study")


def trigram_index_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS study_description_trgm")


class Migration(migrations.Migration):

    dependencies = [
        ('imaging', '0002_dicom_fields'),
        ('patients', '0002_list_and_search_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        TrigramExtension(),
        migrations.RunPython(trigram_index_create, trigram_index_drop, elidable=False),
        migrations.AddIndex(
            model_name='image',
            index=models.Index(fields=['study', 'uploaded_at'], name='image_study_uploaded'),
        ),
        migrations.AddIndex(
            model_name='study',
            index=models.Index(fields=['status', 'created_at'], name='study_status_created'),
        ),
        migrations.AddIndex(
            model_name='study',
            index=models.Index(fields=['modality', 'created_at'], name='study_modality_created'),
        ),
        migrations.AddIndex(
            model_name='study',
            index=models.Index(fields=['priority', 'created_at'], name='study_priority_created'),
        ),
        migrations.AddIndex(
            model_name='study',
            index=models.Index(fields=['patient', 'created_at'], name='study_patient_created'),
        ),
        migrations.AddIndex(
            model_name='study',
            index=models.Index(django.db.models.functions.text.Upper('accession_number'), name='study_accession_upper'),
        ),
        migrations.AddIndex(
            model_name="study",
            index=models.Index(
                condition=models.Q(("status__in", ["received", "ai_pending", "ai_done"])),
                fields=["priority", "created_at"],
                name="study_backlog_triage",
            ),
        ),
        migrations.AddIndex(
            model_name='study',
            index=models.Index(condition=models.Q(('study_instance_uid__isnull', False)), fields=['-study_date', '-created_at'], name='study_dicom_date'),
        ),
    ]
