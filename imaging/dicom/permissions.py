"""Who may read and who may store DICOM: the product's roles, as for the API."""

from rest_framework.permissions import BasePermission

from accounts.roles import READERS, STAFF


class DicomRolePermission(BasePermission):
    """Reading needs any role; storing (POST) needs the staff role."""

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        roles = STAFF if request.method not in ("GET", "HEAD", "OPTIONS") else READERS
        return any(user.has_role(role) for role in roles)
