"""Test settings.

Without DATABASE_URL / CELERY_BROKER_URL the suite uses the embedded default
(a SQLite file, the filesystem broker); CI points both at the real PostgreSQL
and Redis. Each test run gets its own directory, database name and queue names,
exported through the environment so that the worker processes a test starts see
the same ones, and so that two runs on one machine never take each other's jobs.
"""

import os
import tempfile
from pathlib import Path

from .base import env, filesystem_broker_options
from .local import *  # noqa: F403
from .local import CELERY_BROKER_URL, DATABASES

_run_id = os.environ.setdefault("MEDPORTAL_TEST_RUN", str(os.getpid()))
RUN_DIR = Path(os.environ.setdefault("MEDPORTAL_TEST_RUN_DIR", tempfile.mkdtemp(prefix="medportal-test-")))

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = RUN_DIR / "media"
MEDPORTAL_MODEL_CACHE_DIR = RUN_DIR / "model-cache"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so that a real worker process sees the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(RUN_DIR / "test.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_medportal_{_run_id}"}
if env.bool("MEDPORTAL_WORKER_USE_TEST_DB", default=False):
    # Set for worker processes started by the tests: they work on the test database.
    DATABASES["default"]["NAME"] = DATABASES["default"]["TEST"]["NAME"]

MEDPORTAL_GPU_QUEUE = f"gpu-test-{_run_id}"
CELERY_TASK_DEFAULT_QUEUE = f"default-test-{_run_id}"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(RUN_DIR / "broker")
# The beat schedule's sweeper is driven directly by the tests.
CELERY_BEAT_SCHEDULE: dict = {}
MEDPORTAL_REQUEUE_AFTER = 30
# Test cases that commit reset the database with flush, audit tables included.
MEDPORTAL_AUDIT_FLUSH_ALLOWED = True
# No DICOM peer unless a test adds one: the receiver's tests start from an empty allow-list.
MEDPORTAL_DICOM_PEERS = env.list("MEDPORTAL_DICOM_PEERS", default=[])
