from django.contrib.auth.models import AbstractUser

from accounts.roles import Role


class User(AbstractUser):
    """Hospital user. Roles are group memberships; superusers hold every role."""

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        ordering = ["username"]

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    def has_role(self, role: Role | str) -> bool:
        if not self.is_active:
            return False
        if self.is_superuser:
            return True
        names = getattr(self, "_role_names", None)
        if names is None:
            names = set(self.groups.values_list("name", flat=True))
            self._role_names = names
        return str(role) in names or Role.ADMIN in names

    @property
    def is_staff_member(self) -> bool:
        return self.has_role(Role.STAFF)

    @property
    def is_radiologist(self) -> bool:
        return self.has_role(Role.RADIOLOGIST)

    @property
    def is_admin(self) -> bool:
        return self.has_role(Role.ADMIN)
