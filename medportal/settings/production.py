"""Production: every secret comes from the environment and has no default."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
# Keys the patient pseudonyms and UIDs of de-identified exports. Separate from SECRET_KEY so that
# rotating one does not relink or unlink the other, and so that it can be handed to whoever must
# reproduce the pseudonyms without handing over the session key.
MEDPORTAL_DEID_KEY = env.str("MEDPORTAL_DEID_KEY")
if MEDPORTAL_DEID_KEY == SECRET_KEY:
    raise ImproperlyConfigured("MEDPORTAL_DEID_KEY must differ from DJANGO_SECRET_KEY.")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["ATOMIC_REQUESTS"] = True
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL")

# Trust a proxy's "this came in over HTTPS" header only when told which header the TLS proxy sets
# (e.g. X-Forwarded-Proto), and only then: a client talking to gunicorn directly could send it itself.
# Without it, SECURE_SSL_REDIRECT sends plain-HTTP requests to HTTPS.
_proxy_ssl_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="").strip()
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# One cache for every web process, so an API token's rate limit holds across all of them.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env.str("DJANGO_CACHE_URL", default=CELERY_BROKER_URL),
        "KEY_PREFIX": "medportal",
    }
}
