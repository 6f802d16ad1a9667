from django.contrib.auth.models import Group
from django.db import transaction

from accounts.models import User
from accounts.roles import Role


def roles_ensure() -> dict[str, Group]:
    """Create the role groups if they are missing (idempotent)."""
    return {role.value: Group.objects.get_or_create(name=role.value)[0] for role in Role}


@transaction.atomic
def user_create(
    *,
    username: str,
    password: str,
    role: Role,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
) -> User:
    groups = roles_ensure()
    user = User(username=username, first_name=first_name, last_name=last_name, email=email)
    user.set_password(password)
    # Admins also reach the Django admin.
    user.is_staff = role == Role.ADMIN
    user.is_superuser = role == Role.ADMIN
    user.full_clean()
    user.save()
    user.groups.add(groups[role.value])
    return user
