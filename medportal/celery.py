import os

from celery import Celery

# Forgetting DJANGO_SETTINGS_MODULE must never mean DEBUG and a public key: production settings fail
# loudly without their secrets. The demo, the tests and the benchmark name their settings explicitly.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medportal.settings.production")

app = Celery("medportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
