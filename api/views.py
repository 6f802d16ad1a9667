from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from api.exceptions import error_body
from audit.access import audit_exempt


@audit_exempt("the API's not-found answer")
@csrf_exempt  # it changes nothing; a CSRF refusal would be an HTML page instead of the JSON 404
def api_not_found(request, *args, **kwargs) -> JsonResponse:
    """Any /api/v1/ path no route matches (e.g. a malformed id) gets a JSON 404, not an HTML page."""
    body = error_body(status_code=404, code="not_found", message="Not found.")
    return JsonResponse(body, status=404)
