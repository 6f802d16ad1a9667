"""The three roles of the product, kept as Django groups so admins manage them in the admin."""

from django.db import models


class Role(models.TextChoices):
    STAFF = "staff", "Staff"
    RADIOLOGIST = "radiologist", "Radiologist"
    ADMIN = "admin", "Administrator"
