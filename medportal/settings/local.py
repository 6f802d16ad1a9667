"""Embedded default: SQLite and a broker on the filesystem, so no server is needed."""

from .base import *  # noqa: F403
from .base import VAR_DIR, env, filesystem_broker_options

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="local-development-only-not-secret")
# Keys the pseudonyms of de-identified exports; fixed here so demo exports are reproducible, and public.
MEDPORTAL_DEID_KEY = env.str("MEDPORTAL_DEID_KEY", default="local-development-deid-key-not-secret")

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(VAR_DIR / "broker")

VAR_DIR.mkdir(parents=True, exist_ok=True)
(VAR_DIR / "staticfiles").mkdir(exist_ok=True)  # whitenoise warns when STATIC_ROOT is missing
MEDPORTAL_DEMO_ALLOWED = True
# The demo receiver takes instances and queries from DCMTK's and pynetdicom's tools on this machine only.
MEDPORTAL_DICOM_PEERS = env.list(
    "MEDPORTAL_DICOM_PEERS",
    default=[f"{title}@127.0.0.1" for title in ("STORESCU", "ECHOSCU", "FINDSCU", "MOVESCU", "GETSCU", "PYNETDICOM")],
)
