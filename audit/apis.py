from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView, get_object_or_404
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.policy import Act, Resource, allowed_roles
from api.pagination import NewestFirstCursorPagination
from audit.access import audit_exempt
from audit.filters import AuditEventFilter
from audit.models import AuditEvent

# Not audited: it shows who read what (ids, no names), to administrators only, and a row for every
# look at the trail would multiply it without telling anyone more.
TRAIL = "the trail itself (ids, no names), administrators only"


class AuditEventOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = (
            "id",
            "occurred_at",
            "actor",
            "actor_username",
            "action",
            "interface",
            "object_type",
            "object_id",
            "patient",
            "ip_address",
            "forwarded_for",
            "user_agent",
            "method",
            "path",
            "detail",
        )


@audit_exempt(TRAIL)
class AuditEventListApi(ListAPIView):
    """The audit trail: read-only, for admins only. There is no way to change or delete an event.

    Newest first, paged by cursor: follow ``next``; there is no page number and no count.
    """

    required_roles = {"GET": allowed_roles(Resource.AUDIT, Act.SEARCH)}
    serializer_class = AuditEventOutputSerializer
    filterset_class = AuditEventFilter
    pagination_class = NewestFirstCursorPagination
    queryset = AuditEvent.objects.all()

    @extend_schema(summary="List audit events")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


@audit_exempt(TRAIL)
class AuditEventDetailApi(APIView):
    required_roles = {"GET": allowed_roles(Resource.AUDIT, Act.READ)}

    @extend_schema(summary="Read an audit event", responses=AuditEventOutputSerializer)
    def get(self, request, event_id):
        return Response(AuditEventOutputSerializer(get_object_or_404(AuditEvent, id=event_id)).data)
