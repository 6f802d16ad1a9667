
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('imaging', '0003_list_and_search_indexes'),
        ('inference', '0001_initial'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='prediction',
            index=models.Index(fields=['queued_at', 'id'], name='prediction_queued'),
        ),
        migrations.AddIndex(
            model_name='prediction',
            index=models.Index(fields=['status', 'queued_at', 'id'], name='prediction_status_queued'),
        ),
        migrations.AddIndex(
            model_name='prediction',
            index=models.Index(fields=['status', 'finished_at'], name='prediction_status_finished'),
        ),
        migrations.AddIndex(
            model_name='prediction',
            index=models.Index(fields=['finished_at'], name='prediction_finished'),
        ),
        migrations.AddIndex(
            model_name='prediction',
            index=models.Index(fields=['model', 'queued_at'], name='prediction_model_queued'),
        ),
    ]
