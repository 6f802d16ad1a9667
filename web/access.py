"""Role checks for the server-rendered pages.

A signed-in user without the role gets PermissionDenied, which Django renders
with templates/403.html; an anonymous user is sent to the login page.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from accounts.roles import Role


class RoleDenied(PermissionDenied):
    """Carries the roles that would have been allowed, so the 403 page can say which."""

    def __init__(self, roles: tuple[Role, ...]):
        self.roles = roles
        # Admins pass every check, so naming them on each page would only add noise.
        named = [role for role in roles if role != Role.ADMIN] or list(roles)
        names = " or ".join(Role(role).label.lower() for role in named)
        super().__init__(f"This page is for users with the {names} role.")


def user_has_any_role(user, roles: tuple[Role, ...]) -> bool:
    return user.is_authenticated and any(user.has_role(role) for role in roles)


def role_required(roles: tuple[Role, ...]) -> Callable:
    """Allow the view only to signed-in users holding one of ``roles``, a set from accounts.roles."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user_has_any_role(request.user, roles):
                raise RoleDenied(roles)
            return view(request, *args, **kwargs)

        wrapped.allowed_roles = roles
        return wrapped

    return decorator
