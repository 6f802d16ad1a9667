from django.urls import path

from audit import apis

urlpatterns = [
    path("audit-events/", apis.AuditEventListApi.as_view(), name="auditevent-list"),
    path("audit-events/<int:event_id>/", apis.AuditEventDetailApi.as_view(), name="auditevent-detail"),
]
