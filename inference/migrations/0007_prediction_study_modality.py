from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def backfill(apps, schema_editor):
    """Every existing result gets its study's modality, in one statement."""
    Image = apps.get_model("imaging", "Image")
    Prediction = apps.get_model("inference", "Prediction")
    Prediction.objects.update(
        study_modality=Subquery(Image.objects.filter(pk=OuterRef("image_id")).values("study__modality")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("imaging", "0012_study_ai_flag"),
        ("inference", "0006_study_ai_flag_backfill"),
    ]

    operations = [
        migrations.AddField(
            model_name="prediction",
            name="study_modality",
            field=models.CharField(default="", editable=False, help_text="The study's modality.", max_length=8),
            preserve_default=False,
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="prediction",
            index=models.Index(fields=["study_modality", "queued_at", "id"], name="prediction_modality_queued"),
        ),
    ]
