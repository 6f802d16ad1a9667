"""Test settings.

Without DATABASE_URL / CELERY_BROKER_URL the suite uses the embedded default
(SQLite file, filesystem broker); CI points both at the real PostgreSQL and Redis.
"""

import os

from .base import VAR_DIR
from .local import *  # noqa: F403
from .local import DATABASES

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so that a real worker process sees the same test database.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("MEDPORTAL_TEST_SQLITE", str(VAR_DIR / "test-medportal.sqlite3"))
    }
