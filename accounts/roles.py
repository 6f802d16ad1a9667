"""The three roles of the product, kept as Django groups so admins manage them in the admin."""

from django.db import models


class Role(models.TextChoices):
    STAFF = "staff", "Staff"
    RADIOLOGIST = "radiologist", "Radiologist"
    ADMIN = "admin", "Administrator"


# Who may do what, for the pages, the API and DICOMweb alike. Each set names the admin role too
# (User.has_role lets admins through anyway) so that every rule reads complete where it is used.
READERS: tuple[Role, ...] = (Role.STAFF, Role.RADIOLOGIST, Role.ADMIN)
STAFF: tuple[Role, ...] = (Role.STAFF, Role.ADMIN)
RADIOLOGISTS: tuple[Role, ...] = (Role.RADIOLOGIST, Role.ADMIN)
ADMINS: tuple[Role, ...] = (Role.ADMIN,)
