"""Page fragments that a page polls (the worklist's rows, a study's results).

A poll whose fragment is exactly what the page already shows is answered ``304 Not Modified``
with no body. Such an answer discloses nothing, so it writes no audit row: the trail records
what a user was shown, once per time it was sent, rather than the same 25 patients every
15 seconds for as long as a worklist stays open. The page is given the tag of the fragment it
was rendered with, so even its first poll is conditional.
"""

import hashlib
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.template.loader import render_to_string
from django.utils.cache import parse_etags
from django.utils.safestring import SafeString, mark_safe


def fragment_etag(request: HttpRequest, html: str) -> str:
    """A strong tag of the fragment's bytes as shown to this user (one user's tag never matches another's)."""
    digest = hashlib.blake2b(f"{request.user.pk}\n{html}".encode(), digest_size=16).hexdigest()
    return f'"{digest}"'


def render_fragment(request: HttpRequest, template: str, context: dict) -> tuple[SafeString, str]:
    """The fragment's HTML for the page to embed, and its tag for the page's first poll."""
    html = render_to_string(template, context, request=request)
    return mark_safe(html), fragment_etag(request, html)  # noqa: S308 - rendered by the template engine


def polled_fragment(
    request: HttpRequest, template: str, context: dict, *, record_access: Callable[[], None]
) -> HttpResponse:
    """Answer a poll: 304 when the client holds this very fragment, else the fragment, audited.

    ``record_access`` writes the audit rows of what the fragment shows; it runs only when the
    fragment is sent.
    """
    html, etag = render_fragment(request, template, context)
    if etag in parse_etags(request.headers.get("If-None-Match", "")):
        response = HttpResponseNotModified()
    else:
        record_access()
        response = HttpResponse(html)
    response["ETag"] = etag
    # Never stored by the browser or a proxy: the client keeps the fragment in the page itself.
    response["Cache-Control"] = "no-store"
    return response
