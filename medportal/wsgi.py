import os

from django.core.wsgi import get_wsgi_application

# Forgetting DJANGO_SETTINGS_MODULE must never mean DEBUG and a public key: production settings fail
# loudly without their secrets. The demo, the tests and the benchmark name their settings explicitly.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medportal.settings.production")

application = get_wsgi_application()
