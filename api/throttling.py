from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from tokens.models import ApiToken


class ApiTokenRateThrottle(SimpleRateThrottle):
    """Limits each machine client (one API token) to MEDPORTAL_API_TOKEN_RATE, e.g. "600/min".

    Browser sessions are people at a screen and are not throttled here.
    """

    scope = "api_token"

    def get_rate(self):
        # Read at request time, not import time, so the rate follows the settings in force.
        return getattr(settings, "MEDPORTAL_API_TOKEN_RATE", None)

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiToken):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}

    def allow_request(self, request, view):
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


class DicomWebTokenRateThrottle(ApiTokenRateThrottle):
    """DICOMweb's own budget per token (MEDPORTAL_DICOMWEB_TOKEN_RATE): a viewer loading a series frame by
    frame makes hundreds of requests a minute, and must not use up the token's API budget either."""

    scope = "dicomweb_token"

    def get_rate(self):
        return getattr(settings, "MEDPORTAL_DICOMWEB_TOKEN_RATE", None)
