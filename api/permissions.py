"""Role-based access for the API: the same roles as the pages (Django groups, see accounts.roles)."""

from rest_framework.permissions import BasePermission

from accounts.roles import Role


class HasRole(BasePermission):
    """Allows a request when the user holds one of the roles the view requires for its method.

    Views declare ``required_roles = {"GET": READERS, "POST": STAFF}``; HEAD and OPTIONS follow GET,
    and a method the view does not list is refused. Anonymous users are refused here too, which
    DRF turns into 401 (not 403) because the token authenticator sends a WWW-Authenticate header.
    """

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method.lower() not in view.http_method_names or not hasattr(view, request.method.lower()):
            # Let the view answer 405: the method does not exist here for anyone.
            return True
        roles = required_roles_for(view, request.method)
        return any(user.has_role(role) for role in roles)


def required_roles_for(view, method: str) -> tuple[Role, ...]:
    table = getattr(view, "required_roles", None) or {}
    if method in ("HEAD", "OPTIONS"):
        method = "GET"
    return tuple(table.get(method, ()))
