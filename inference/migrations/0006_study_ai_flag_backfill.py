from django.db import migrations
from django.db.models import Exists, Max, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThanOrEqual

# inference.study_status.AI_FLAG_CONFIDENCE when this migration was written.
AI_FLAG_CONFIDENCE = 0.8


def backfill(apps, schema_editor):
    """Every study with an unreviewed abnormal result gets its top confidence and flag; the others
    keep the new columns' defaults (none, not flagged), which is what they stand for."""
    Study = apps.get_model("imaging", "Study")
    Prediction = apps.get_model("inference", "Prediction")
    abnormal = Prediction.objects.filter(
        image__study=OuterRef("pk"), status="succeeded", is_abnormal=True, review__isnull=True
    )

    def top():
        return Subquery(abnormal.order_by().values("image__study").annotate(top=Max("confidence")).values("top")[:1])

    Study.objects.filter(Exists(abnormal)).update(
        ai_top_confidence=top(),
        ai_flagged=GreaterThanOrEqual(Coalesce(top(), Value(-1.0)), Value(AI_FLAG_CONFIDENCE)),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("imaging", "0012_study_ai_flag"),
        ("inference", "0005_prediction_reports"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True)]
