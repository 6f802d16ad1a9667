import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper


class Sex(models.TextChoices):
    # DICOM PatientSex values.
    FEMALE = "F", "Female"
    MALE = "M", "Male"
    OTHER = "O", "Other"
    UNKNOWN = "U", "Unknown"


class PatientQuerySet(models.QuerySet):
    def search(self, term: str) -> "PatientQuerySet":
        term = term.strip()
        if not term:
            return self
        query = Q(mrn__iexact=term) | Q(mrn__istartswith=term)
        for word in term.split():
            query |= Q(family_name__icontains=word) | Q(given_name__icontains=word)
        return self.filter(query)


class Patient(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    mrn = models.CharField(
        "MRN", max_length=64, unique=True, help_text="Medical record number, unique in this hospital."
    )
    family_name = models.CharField(max_length=120)
    given_name = models.CharField(max_length=120, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=1, choices=Sex.choices, default=Sex.UNKNOWN)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["family_name", "given_name", "mrn"]
        indexes = [
            # The list's order, so a page is read from the index rather than sorted.
            models.Index(fields=["family_name", "given_name", "mrn"], name="patient_name_order"),
            # MRN lookups ignore case (``mrn__iexact`` is ``UPPER(mrn) = UPPER(…)``).
            models.Index(Upper("mrn"), name="patient_mrn_upper"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(sex__in=Sex.values), name="patient_sex_valid"),
            models.CheckConstraint(condition=~Q(mrn=""), name="patient_mrn_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.mrn})"

    @property
    def display_name(self) -> str:
        return f"{self.family_name.upper()}, {self.given_name}".rstrip(", ")
