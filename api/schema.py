"""OpenAPI generation: every operation documents the errors it can give, in the one error shape."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers

from api.permissions import required_roles_for


class ErrorBodySerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="The HTTP status code, repeated.")
    code = serializers.CharField(help_text="Machine-readable error code, e.g. invalid, not_found, image_rejected.")
    message = serializers.CharField(help_text="A sentence for people.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per input field (dotted for nested fields); empty when no field is at fault.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


ERROR_DESCRIPTIONS = {
    "400": "Invalid input: see error.fields for each field's messages.",
    "401": "Not authenticated: sign in (session) or send a valid, unexpired API token.",
    "403": "Authenticated, but your role does not allow this.",
    "404": "No such record (or no such page of results).",
    "406": "The Accept header asks for a representation this endpoint cannot give.",
    "409": "The record is not in a state that allows this yet.",
    "415": "Unsupported request content type.",
    "429": "Too many requests from this API token; retry after the Retry-After seconds.",
    "503": "The database is briefly unavailable; nothing was saved. Retry after the Retry-After seconds.",
}


class AutoSchema(SpectacularAutoSchema):
    def get_serializer_name(self, serializer, direction):
        # House style nests InputSerializer/OutputSerializer in each view; name them after the view
        # (PatientListApi.InputSerializer -> PatientListInput) so components stay unique.
        qualname = type(serializer).__qualname__
        if "." in qualname:
            outer, inner = qualname.rsplit(".", 1)
            return outer.split(".")[-1].removesuffix("Api") + inner.removesuffix("Serializer")
        return super().get_serializer_name(serializer, direction)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        codes = ["401", "403", "404", "406", "429", "503"]
        has_body = self.method in ("POST", "PUT", "PATCH")
        if has_body or self._get_filter_parameters() or self.get_override_parameters():
            codes.append("400")
        if self._is_list_view():
            codes.append("400")  # e.g. a malformed page_size
        if has_body:
            codes.append("415")
        if not required_roles_for(self.view, self.method):
            codes.remove("403")
        for code in sorted(set(codes)):
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code)
                response["description"] = ERROR_DESCRIPTIONS[code]
                responses[code] = response
        return responses


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token created by an administrator: `Authorization: Bearer <key>`.",
        }


def only_api_v1(endpoints):
    """The schema documents the REST API only (DICOMweb and pages have their own contracts)."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/v1/")]
