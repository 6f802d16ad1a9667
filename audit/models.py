import simple_history
from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from imaging.models import Study
from patients.models import Patient


class AuditAction(models.TextChoices):
    READ = "read", "Read"
    CREATE = "create", "Create"
    UPDATE = "update", "Update"
    DELETE = "delete", "Delete"
    DOWNLOAD = "download", "Download"
    LOGIN = "login", "Log in"
    LOGIN_FAILED = "login_failed", "Failed log in"
    LOCKOUT = "lockout", "Locked out"
    LOGOUT = "logout", "Log out"


class AuditInterface(models.TextChoices):
    API = "api", "API"
    UI = "ui", "Web pages"
    ADMIN = "admin", "Django admin"
    DICOMWEB = "dicomweb", "DICOMweb"
    DIMSE = "dimse", "DICOM network (DIMSE)"
    SYSTEM = "system", "System"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Audit events are append-only.")

    def delete(self):
        raise TypeError("Audit events are append-only.")


class AuditEvent(models.Model):
    """One read or write of patient data: who, what, when, from where, through which interface.

    Append-only: the model, its QuerySet, the admin and the API refuse changes, and database
    triggers refuse UPDATE, DELETE and TRUNCATE as well (audit.protection).
    """

    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Kept as text as well, so the row still says who it was if the account is renamed.
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=16, choices=AuditAction.choices)
    interface = models.CharField(max_length=16, choices=AuditInterface.choices)
    object_type = models.CharField(max_length=64, help_text="app_label.model of the record, e.g. patients.patient.")
    object_id = models.CharField(max_length=64, blank=True)
    patient = models.ForeignKey(
        Patient,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=True,
        help_text="Whose data it was.",
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    forwarded_for = models.CharField(
        max_length=255, blank=True, help_text="X-Forwarded-For as received, for requests through a proxy."
    )
    user_agent = models.CharField(max_length=255, blank=True)
    method = models.CharField(max_length=8, blank=True)
    path = models.CharField(max_length=255, blank=True)
    detail = models.CharField(max_length=255, blank=True, help_text="What else matters, e.g. 'list' or 'rerun'.")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = "audit event"
        indexes = [
            models.Index(fields=["patient", "occurred_at"]),
            models.Index(fields=["actor", "occurred_at"]),
            models.Index(fields=["object_type", "object_id"]),
            models.Index(fields=["occurred_at", "id"], name="auditevent_occurred"),
            models.Index(fields=["actor_username", "occurred_at"], name="auditevent_actor_username"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(action__in=AuditAction.values), name="auditevent_action_valid"),
            models.CheckConstraint(condition=Q(interface__in=AuditInterface.values), name="auditevent_interface_valid"),
        ]

    def __str__(self) -> str:
        who = self.actor_username or "anonymous"
        return f"{who} {self.action} {self.object_type} {self.object_id} via {self.interface}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise TypeError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit events are append-only.")


class InsertOnlyHistoricalRecords(HistoricalRecords):
    """Change history whose rows are never updated: a user named in it cannot be deleted.

    simple-history's default for ``history_user`` is SET_NULL, which would UPDATE history rows
    (refused by the database) and erase who made the change. Deactivate such users instead, as
    for users named in audit events.
    """

    def _get_history_user_fields(self):
        fields = super()._get_history_user_fields()
        field = fields["history_user"]
        fields["history_user"] = models.ForeignKey(
            settings.AUTH_USER_MODEL,
            null=True,
            related_name=field.remote_field.related_name,
            on_delete=models.PROTECT,
            db_constraint=field.db_constraint,
        )
        return fields


# Change history (old values) of patient and study records. Registered here rather than on the
# models themselves so the history tables belong to the audit trail and its admin. They are
# insert-only like the audit events (audit.protection).
simple_history.register(
    Patient, app="audit", table_name="audit_historicalpatient", records_class=InsertOnlyHistoricalRecords
)
simple_history.register(
    Study, app="audit", table_name="audit_historicalstudy", records_class=InsertOnlyHistoricalRecords
)
HistoricalPatient = Patient.history.model
HistoricalStudy = Study.history.model
