"""Settings shared by every environment. Values come from the environment."""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()


def filesystem_broker_options(directory: Path) -> dict:
    """Transport options for Celery's filesystem broker, which needs no server, kept under ``directory``."""
    for folder in ("queue", "control", "processed"):
        (directory / folder).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(directory / "queue"),
        "data_folder_out": str(directory / "queue"),
        "control_folder": str(directory / "control"),
        "processed_folder": str(directory / "processed"),
        "store_processed": False,
    }


DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "audit.admin_site.AuditedAdminConfig",  # django.contrib.admin, with its autocomplete audited
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "corsheaders",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "axes",
    "accounts",
    "patients",
    "imaging",
    "inference",
    "tokens",
    "audit",
    "web",
]

MIDDLEWARE = [
    # Cross-origin viewers: answers preflight requests to DICOMweb before anything else (see CORS_ below).
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # A body over MEDPORTAL_MAX_REQUEST_BYTES is answered 413 before anything reads it.
    "web.middleware.RequestSizeLimitMiddleware",
    # A database outage answers 503 with a clear message, never a 500.
    "web.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Lets the change history of patients and studies record who made each change.
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Signs out sessions left idle on a shared workstation, and any session at the end of its lifetime.
    "accounts.sessions.SessionTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Answers a locked-out log in attempt (django-axes); last, so it sees the view's outcome.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "medportal.urls"
WSGI_APPLICATION = "medportal.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "pages:login"
LOGIN_REDIRECT_URL = "pages:home"
LOGOUT_REDIRECT_URL = "pages:login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'medportal.sqlite3'}"),
}
# A request either commits everything it did or nothing: no half-written records.
DATABASES["default"]["ATOMIC_REQUESTS"] = True
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default shares one file between web and worker processes.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Every query here is an index lookup or a short page; JIT compiling them costs more (tens to
    # hundreds of milliseconds) than it could ever save.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Log in and sessions.
AUTHENTICATION_BACKENDS = [
    # Refuses a locked-out user before the password is even checked (django-axes); logs no one in.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Throttling and lockout of /login/ and the admin's log in: after AXES_FAILURE_LIMIT failures the
# pair (user name, client address) is refused for AXES_COOLOFF_TIME, and every further failure
# restarts the wait. Locking the pair, not the address alone, keeps one user's typos from locking
# out a whole ward behind one address. Each failure, lockout and log in is in the audit trail.
AXES_ENABLED = env.bool("MEDPORTAL_LOGIN_LOCKOUT", default=True)
AXES_FAILURE_LIMIT = env.int("MEDPORTAL_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("MEDPORTAL_LOGIN_LOCKOUT_MINUTES", default=15))
# e.g. "username+ip_address" (default), "username", "ip_address", or several separated by commas.
AXES_LOCKOUT_PARAMETERS = [
    combination.split("+") if "+" in combination else combination
    for combination in env.list("MEDPORTAL_LOGIN_LOCKOUT_PARAMETERS", default=["username+ip_address"])
]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
# The audit trail records log ins and log outs; axes keeps only its failure counters.
AXES_DISABLE_ACCESS_LOG = True
# An idle session on a shared ward workstation is signed out after this many seconds (sliding).
MEDPORTAL_SESSION_IDLE_TIMEOUT = env.int("MEDPORTAL_SESSION_IDLE_TIMEOUT", default=15 * 60)
# Absolute lifetime of a session however active it is (a shift), and no session outlives the browser.
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=12 * 60 * 60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env.bool("DJANGO_SESSION_EXPIRE_AT_BROWSER_CLOSE", default=True)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("MEDPORTAL_PASSWORD_MIN_LENGTH", default=12)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=str(VAR_DIR / "media"))
STORAGES = {
    # Images and model weights go through the storage API only, so a worker on
    # another host reads them from the same backend (a shared volume or object store).
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Uploads: limits enforced by imaging.validation before anything is stored.
MEDPORTAL_MAX_UPLOAD_BYTES = env.int("MEDPORTAL_MAX_UPLOAD_BYTES", default=50 * 1024 * 1024)
MEDPORTAL_MAX_IMAGE_PIXELS = env.int("MEDPORTAL_MAX_IMAGE_PIXELS", default=40_000_000)
# Decoded pixel data: rows x columns x samples x frames x bytes per sample (imaging.validation).
MEDPORTAL_MAX_PIXEL_BYTES = env.int("MEDPORTAL_MAX_PIXEL_BYTES", default=512 * 1024 * 1024)
# A DICOM instance, whichever way it comes in: a limit of its own, large enough for enhanced
# multi-frame CT and MR, tomosynthesis and ultrasound cine. C-STORE and STOW-RS receive it to disk.
MEDPORTAL_MAX_DICOM_BYTES = env.int("MEDPORTAL_MAX_DICOM_BYTES", default=2 * 1024 * 1024 * 1024)
# A whole request body: larger ones are refused with 413 before anything reads them
# (web.middleware.RequestSizeLimitMiddleware); room for a few files of the upload limit at once.
MEDPORTAL_MAX_REQUEST_BYTES = env.int(
    "MEDPORTAL_MAX_REQUEST_BYTES", default=4 * MEDPORTAL_MAX_UPLOAD_BYTES + 1024 * 1024
)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# A request of uploads larger than this is streamed to temporary files (FILE_UPLOAD_TEMP_DIR or
# TMPDIR) as it is parsed, never held in memory; each file's size is checked before it is read.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Inference.
MEDPORTAL_MODEL_ZOO = BASE_DIR / "inference" / "zoo"
MEDPORTAL_MODEL_CACHE_DIR = env.path("MEDPORTAL_MODEL_CACHE_DIR", default=str(VAR_DIR / "model-cache"))
MEDPORTAL_BATCH_SIZE = env.int("MEDPORTAL_BATCH_SIZE", default=16)
MEDPORTAL_MAX_ATTEMPTS = env.int("MEDPORTAL_MAX_ATTEMPTS", default=3)
MEDPORTAL_TASK_TIME_LIMIT = env.int("MEDPORTAL_TASK_TIME_LIMIT", default=300)
# A queued prediction whose task has not started after this long is enqueued again.
MEDPORTAL_REQUEUE_AFTER = env.int("MEDPORTAL_REQUEUE_AFTER", default=120)
MEDPORTAL_SWEEP_INTERVAL = env.float("MEDPORTAL_SWEEP_INTERVAL", default=30.0)
MEDPORTAL_GPU_QUEUE = env.str("MEDPORTAL_GPU_QUEUE", default="gpu")
# A worker that finished a batch keeps claiming batches of the same model for this long
# before it goes back to the broker, so a burst costs one task per batch, not per image.
MEDPORTAL_DRAIN_SECONDS = env.float("MEDPORTAL_DRAIN_SECONDS", default=10.0)
# Load every active model of the worker's queues when a pool process starts (no cold first job).
MEDPORTAL_WARM_MODELS = env.bool("MEDPORTAL_WARM_MODELS", default=True)
# Grad-CAM runs as a follow-up task at this (lower) broker priority, after the second opinion is stored.
MEDPORTAL_HEATMAP_PRIORITY = env.int("MEDPORTAL_HEATMAP_PRIORITY", default=9)
# The sweeper re-sends heatmap work lost with the broker for predictions finished within this window.
MEDPORTAL_HEATMAP_RETRY_WINDOW = env.int("MEDPORTAL_HEATMAP_RETRY_WINDOW", default=3600)
# Above this many waiting predictions, uploads are still accepted but say how long the AI will take.
MEDPORTAL_QUEUE_SOFT_LIMIT = env.int("MEDPORTAL_QUEUE_SOFT_LIMIT", default=200)
# How often an open worklist asks for new and changed studies (a small fragment; paused in a hidden tab).
MEDPORTAL_WORKLIST_POLL_SECONDS = env.int("MEDPORTAL_WORKLIST_POLL_SECONDS", default=15)
# Images per second assumed for the expected wait until the workers have finished some work.
MEDPORTAL_ASSUMED_THROUGHPUT = env.float("MEDPORTAL_ASSUMED_THROUGHPUT", default=20.0)
# Demo users with a known password may be created only where this is on (the embedded default).
MEDPORTAL_DEMO_ALLOWED = False
# `manage.py flush` may empty the insert-only audit tables: the test settings only (see audit.protection).
MEDPORTAL_AUDIT_FLUSH_ALLOWED = False
# The C-STORE receiver's allow-list is kept in the admin (DICOM peers); these entries, AE_TITLE@ADDRESS
# or AE_TITLE@NETWORK/BITS, are added to it when the receiver starts if missing. None: every
# association is refused until an administrator adds a peer.
MEDPORTAL_DICOM_PEERS = env.list("MEDPORTAL_DICOM_PEERS", default=[])
# WADO-RS: the most frame numbers one request may list (duplicates count, they are sent once).
MEDPORTAL_DICOMWEB_MAX_FRAMES = env.int("MEDPORTAL_DICOMWEB_MAX_FRAMES", default=1000)
# A viewer on another origin (its own web server) may read DICOMweb from these origins only
# (e.g. https://viewer.hospital.example); none by default. Only /dicomweb/ answers cross-origin requests.
CORS_ALLOWED_ORIGINS = env.list("MEDPORTAL_DICOMWEB_CORS_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/dicomweb/.*$"
# Such a viewer signs in with an API token (Authorization header); cookies only if this is on.
CORS_ALLOW_CREDENTIALS = env.bool("MEDPORTAL_DICOMWEB_CORS_CREDENTIALS", default=False)
# QIDO-RS tells what it ignored or truncated in Warning; a script on another origin may read it.
CORS_EXPOSE_HEADERS = ["Warning", "Content-Location"]
CORS_PREFLIGHT_MAX_AGE = 86400
# The OHIF Viewer's prebuilt dist/, served under /viewer/; bin/_npm.sh installs it (version pinned in package.json).
MEDPORTAL_OHIF_DIST = env.path("MEDPORTAL_OHIF_DIST", default=str(BASE_DIR / "node_modules" / "@ohif" / "app" / "dist"))
# DICOM Query/Retrieve: the most matches one C-FIND answers (past it the peer is told to narrow the query).
MEDPORTAL_DICOM_FIND_LIMIT = env.int("MEDPORTAL_DICOM_FIND_LIMIT", default=1000)
# Keys the pseudonyms of de-identified exports (imaging.dicom.deid); each settings module sets it,
# production from the environment with no default. Never SECRET_KEY.
MEDPORTAL_DEID_KEY = ""

# Celery.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Unacknowledged (acks_late) tasks come back after this long if their worker died.
    "visibility_timeout": MEDPORTAL_TASK_TIME_LIMIT * 2,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Pool processes load their models at start-up (MEDPORTAL_WARM_MODELS); give them time to.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env.float("CELERY_WORKER_PROC_ALIVE_TIMEOUT", default=180.0)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ROUTES = ("taskqueue.routing.route_task",)
CELERY_BEAT_SCHEDULE = {
    "predictions-sweep": {
        "task": "inference.tasks.predictions_sweep",
        "schedule": MEDPORTAL_SWEEP_INTERVAL,
    },
}

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes anonymous requests 401 rather than 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every view states which roles may use each method; a view that states none is closed.
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.HasRole"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.ApiTokenRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pagination",
    "PAGE_SIZE": 25,
    "EXCEPTION_HANDLER": "api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# Requests per API token (machine client); browser sessions are not throttled.
MEDPORTAL_API_TOKEN_RATE = env.str("MEDPORTAL_API_TOKEN_RATE", default="600/min")
# DICOMweb requests per API token, counted apart from the API: a viewer asks for one frame per request,
# so a 1,000-slice CT is 1,000 requests in a few seconds.
MEDPORTAL_DICOMWEB_TOKEN_RATE = env.str("MEDPORTAL_DICOMWEB_TOKEN_RATE", default="20000/min")
# A token created without an expiry lives this many days; 0 lets such tokens live until revoked.
MEDPORTAL_API_TOKEN_DAYS = env.int("MEDPORTAL_API_TOKEN_DAYS", default=90)
SPECTACULAR_SETTINGS = {
    "TITLE": "MedPortal API",
    "DESCRIPTION": (
        "Patients, imaging studies, images and AI second opinions. Every AI output is a second opinion "
        "with its confidence and exact model version, never a diagnosis. Errors share one JSON shape: "
        '`{"error": {"status", "code", "message", "fields"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["api.schema.only_api_v1"],
    "ENUM_NAME_OVERRIDES": {
        "StudyStatusEnum": "imaging.models.StudyStatus",
        "PredictionStatusEnum": "inference.models.PredictionStatus",
        "AIModelStatusEnum": "inference.models.AIModelStatus",
        "ReviewDecisionEnum": "inference.models.ReviewDecision",
    },
    # The docs pages load Swagger UI and Redoc from our own static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Query strings carry searches by MRN or name; no log line keeps them.
    "filters": {"redact_query_strings": {"()": "api.log_filters.RedactQueryStrings"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_query_strings"]}
    },
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # runserver's request lines have their own handler by default, which would print the query strings.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
