from django.db import migrations, models
from django.db.models import Exists, OuterRef, Q


def backfill(apps, schema_editor):
    """Every result with a review is marked reviewed, in one statement."""
    Prediction = apps.get_model("inference", "Prediction")
    Review = apps.get_model("inference", "Review")
    Prediction.objects.filter(Exists(Review.objects.filter(prediction=OuterRef("pk")))).update(reviewed=True)


class Migration(migrations.Migration):
    dependencies = [("inference", "0007_prediction_study_modality")]

    operations = [
        migrations.AddField(
            model_name="prediction",
            name="reviewed",
            field=models.BooleanField(
                default=False, editable=False, help_text="Whether a radiologist reviewed it."
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="prediction",
            index=models.Index(
                condition=Q(reviewed=True), fields=["queued_at", "id"], name="prediction_reviewed_queued"
            ),
        ),
    ]
