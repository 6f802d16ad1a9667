import contextlib
import ipaddress
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Upper
from pydicom.uid import UID

from patients.models import Patient


class Modality(models.TextChoices):
    # DICOM Modality (0008,0060) codes, so DICOM ingestion maps one to one.
    CR = "CR", "Computed radiography (X-ray)"
    DX = "DX", "Digital radiography (X-ray)"
    CT = "CT", "Computed tomography"
    MR = "MR", "Magnetic resonance"
    US = "US", "Ultrasound"
    MG = "MG", "Mammography"
    DMS = "DMS", "Dermoscopy"
    OP = "OP", "Ophthalmic photography (fundus)"
    SM = "SM", "Slide microscopy"
    XC = "XC", "External-camera photography"
    OT = "OT", "Other"


class BodyPart(models.TextChoices):
    # DICOM Body Part Examined (0018,0015) terms.
    CHEST = "CHEST", "Chest"
    BRAIN = "BRAIN", "Brain"
    HEAD = "HEAD", "Head"
    BREAST = "BREAST", "Breast"
    SKIN = "SKIN", "Skin"
    EYE = "EYE", "Eye (retina)"
    BLOOD = "BLOOD", "Blood"
    ABDOMEN = "ABDOMEN", "Abdomen"
    SPINE = "SPINE", "Spine"
    EXTREMITY = "EXTREMITY", "Extremity"
    OTHER = "OTHER", "Other"


class Procedure(models.TextChoices):
    """What was asked of the exam, where modality and body part alone do not say.

    A blood smear can be read for a white-cell differential or screened for
    malaria; each question has its own model.
    """

    GENERAL = "", "General"
    WBC_DIFFERENTIAL = "WBC_DIFFERENTIAL", "White-cell differential"
    MALARIA_SCREEN = "MALARIA_SCREEN", "Malaria screen"


class Priority(models.IntegerChoices):
    # Lower sorts first in the triage order.
    STAT = 1, "STAT"
    URGENT = 2, "Urgent"
    ROUTINE = 3, "Routine"


class StudyStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    AI_PENDING = "ai_pending", "AI pending"
    AI_DONE = "ai_done", "AI done"
    REVIEWED = "reviewed", "Reviewed"


class StudyQuerySet(models.QuerySet):
    def with_image_count(self) -> "StudyQuerySet":
        """``image_count`` as a subquery per row: a page costs its own rows, not a join of every image.

        Counts images with pixels: a structured report or key-object note filed with the study is
        a DICOM instance, not an image, and a reader told "3 images" expects to see three.
        """
        images = (
            Image.objects.with_pixels()
            .filter(study=OuterRef("pk"))
            .order_by()
            .values("study")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return self.annotate(image_count=Coalesce(Subquery(images), 0))


# What a study is: whose it is, and what the AI models are chosen by. Once images are filed under
# it, changing any of these would put the images (and their AI opinions) under the wrong patient
# or next to opinions from models that were never meant for them. Create a new study instead.
STUDY_IDENTITY_FIELDS = ("patient", "modality", "body_part", "procedure", "study_instance_uid")


class Study(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    accession_number = models.CharField(max_length=64, unique=True)
    study_instance_uid = models.CharField(
        "Study Instance UID",
        max_length=64,
        unique=True,
        null=True,
        blank=True,
        help_text="DICOM StudyInstanceUID, when the study came from DICOM.",
    )
    modality = models.CharField(max_length=8, choices=Modality.choices)
    body_part = models.CharField(max_length=16, choices=BodyPart.choices)
    procedure = models.CharField(
        max_length=32,
        choices=Procedure.choices,
        blank=True,
        default=Procedure.GENERAL,
        help_text="The clinical question, where modality and body part do not pick the AI model alone.",
    )
    description = models.CharField(max_length=255, blank=True)
    study_date = models.DateField(null=True, blank=True)
    study_time = models.TimeField(null=True, blank=True, help_text="DICOM StudyTime, when the study came from DICOM.")
    dicom_accession_number = models.CharField(
        "Accession Number (DICOM)",
        max_length=64,
        blank=True,
        db_index=True,
        help_text="The AccessionNumber the study's instances carry (empty when none): what DICOM queries answer "
        "and match. Not unique: another study may carry the same number.",
    )
    dicom_study_id = models.CharField(
        "Study ID", max_length=16, blank=True, help_text="DICOM StudyID (0020,0010): the modality's own study number."
    )
    referring_physician = models.CharField(max_length=120, blank=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.ROUTINE)
    status = models.CharField(max_length=16, choices=StudyStatus.choices, default=StudyStatus.RECEIVED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    ai_completed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last AI result of this study came in."
    )
    # Kept on the row because every worklist read sorts and shows them: worked out per request they
    # cost a look-up of each backlog study's results. Written only by inference.study_status, in the
    # transaction that changes a result or a review (a test recomputes them after every service).
    ai_top_confidence = models.FloatField(
        null=True,
        blank=True,
        editable=False,
        help_text="Highest confidence among its unreviewed AI results flagged abnormal, if any.",
    )
    ai_flagged = models.BooleanField(
        default=False,
        editable=False,
        help_text="An unreviewed AI result flags it abnormal at or above the worklist's confidence threshold.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    objects = StudyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"
        indexes = [
            models.Index(fields=["status", "priority", "ai_completed_at"]),
            models.Index(fields=["modality", "body_part"]),
            # The list's common filters, each in the list's order.
            models.Index(fields=["status", "created_at"], name="study_status_created"),
            models.Index(fields=["modality", "created_at"], name="study_modality_created"),
            models.Index(fields=["priority", "created_at"], name="study_priority_created"),
            models.Index(fields=["patient", "created_at"], name="study_patient_created"),
            models.Index(fields=["study_date", "created_at"], name="study_date_created"),
            models.Index(Upper("accession_number"), name="study_accession_upper"),
            # The worklist: only the backlog, in triage order, however long the history.
            models.Index(
                fields=["priority", "created_at"],
                condition=Q(status__in=["received", "ai_pending", "ai_done"]),
                name="study_backlog_triage",
            ),
            # The worklist's triage order (priority, AI flag, longest waiting) over the whole backlog
            # (the API) and over one status of it (the page: AI done), so that a page deep in the
            # backlog is read in order; without them PostgreSQL hashed every patient and sorted.
            models.Index(
                fields=["priority", "-ai_flagged", "created_at", "id"],
                condition=Q(status__in=["received", "ai_pending", "ai_done"]),
                name="study_backlog_flag_triage",
            ),
            models.Index(
                fields=["status", "priority", "-ai_flagged", "created_at", "id"],
                condition=Q(status__in=["received", "ai_pending", "ai_done"]),
                name="study_backlog_status_triage",
            ),
            # The worklist searched by patient looks up each matching patient's backlog studies
            # here, among the backlog only rather than the whole history.
            models.Index(
                fields=["patient", "status"],
                condition=Q(status__in=["received", "ai_pending", "ai_done"]),
                name="study_backlog_patient",
            ),
            # QIDO-RS lists DICOM studies newest study date first.
            models.Index(
                fields=["-study_date", "-created_at"],
                condition=Q(study_instance_uid__isnull=False),
                name="study_dicom_date",
            ),
            # QIDO-RS and C-FIND by patient (name, ID): the few DICOM studies of each matching patient.
            # Without it PostgreSQL read every DICOM study into a hash join (18 ms for "Smi*"; 1.5 ms with).
            models.Index(fields=["patient"], condition=Q(study_instance_uid__isnull=False), name="study_dicom_patient"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=StudyStatus.values), name="study_status_valid"),
            models.CheckConstraint(condition=Q(modality__in=Modality.values), name="study_modality_valid"),
            models.CheckConstraint(condition=Q(body_part__in=BodyPart.values), name="study_body_part_valid"),
            models.CheckConstraint(condition=Q(procedure__in=Procedure.values), name="study_procedure_valid"),
            models.CheckConstraint(condition=Q(priority__in=Priority.values), name="study_priority_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.accession_number} {self.get_modality_display()} {self.get_body_part_display()}"

    def clean(self) -> None:
        """Refuse a change of identity once images exist, whoever asks (services, forms, the admin)."""
        super().clean()
        if self._state.adding or not self.images.exists():
            return
        columns = [Study._meta.get_field(name).attname for name in STUDY_IDENTITY_FIELDS]
        stored = Study.objects.filter(pk=self.pk).values(*columns).first() or {}
        changed = [
            name
            for name, column in zip(STUDY_IDENTITY_FIELDS, columns, strict=True)
            if column in stored and stored[column] != getattr(self, column)
        ]
        if changed:
            raise ValidationError(
                dict.fromkeys(changed, "Cannot change once images are filed under this study; create a new study.")
            )


class ImageSource(models.TextChoices):
    UPLOAD = "upload", "Upload"
    STOW_RS = "stow-rs", "DICOMweb STOW-RS"
    C_STORE = "c-store", "DICOM C-STORE"


class ImageQuerySet(models.QuerySet):
    def with_pixels(self) -> "ImageQuerySet":
        """Images a reader can look at: a non-image DICOM instance (SR, KOS, ...) is filed with no size."""
        return self.filter(width__gt=0)


class Image(models.Model):
    """One uploaded image. The file is stored once per content (sha256) through the storage API."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="images")
    file = models.FileField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    size_bytes = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    original_filename = models.CharField(
        max_length=255, blank=True, help_text="As the uploader named it; shown only, never used as a path."
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True, db_index=True)
    source = models.CharField(max_length=16, choices=ImageSource.choices, default=ImageSource.UPLOAD)
    # DICOM identity, empty for PNG/JPEG. The original file is kept untouched; these index it.
    sop_instance_uid = models.CharField(
        "SOP Instance UID",
        max_length=64,
        unique=True,
        null=True,
        blank=True,
        help_text="DICOM SOPInstanceUID: the same instance received twice is stored once.",
    )
    sop_class_uid = models.CharField("SOP Class UID", max_length=64, blank=True)
    series_instance_uid = models.CharField("Series Instance UID", max_length=64, blank=True, db_index=True)
    transfer_syntax_uid = models.CharField("Transfer Syntax UID", max_length=64, blank=True)
    number_of_frames = models.PositiveIntegerField(default=1)
    modality = models.CharField(
        max_length=16,
        blank=True,
        help_text="DICOM Modality (0008,0060) as the instance says it (CT, SR, SEG, ...); empty for PNG/JPEG.",
    )
    analysable = models.BooleanField(
        default=True, help_text="False when the pixels cannot be decoded; no AI runs on it then."
    )
    not_analysable_reason = models.TextField(blank=True, help_text="Why the AI cannot read this image.")

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["uploaded_at"]
        indexes = [
            models.Index(fields=["study", "uploaded_at"], name="image_study_uploaded"),
            # ModalitiesInStudy: the studies with a DICOM instance of a modality, read from the index alone.
            models.Index(
                fields=["modality", "study"],
                condition=Q(sop_instance_uid__isnull=False),
                name="image_dicom_modality_study",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["study", "sha256"], name="image_unique_content_per_study"),
            models.CheckConstraint(condition=Q(source__in=ImageSource.values), name="image_source_valid"),
            models.CheckConstraint(
                condition=Q(analysable=True) | ~Q(not_analysable_reason=""),
                name="image_not_analysable_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return self.original_filename or self.sha256[:12]

    @property
    def has_pixels(self) -> bool:
        """False for a non-image DICOM instance (SR, KOS, PR, waveform, PDF, RT...): filed with no size."""
        return bool(self.width and self.height)

    @property
    def sop_class_name(self) -> str:
        """The DICOM SOP class's name from the standard (its UID when private); "" for PNG/JPEG."""
        return UID(self.sop_class_uid).name if self.sop_class_uid else ""


def validate_ae_title(value: str) -> None:
    # DICOM AE (PS3.5 6.2): 1 to 16 characters, no backslash or control characters; spaces at
    # either end are not significant.
    title = value.strip()
    if not title or len(title) > 16 or "\\" in title or any(ord(c) < 32 or ord(c) == 127 for c in title):
        raise ValidationError("An AE title has 1 to 16 characters, without backslash or control characters.")


def validate_network(value: str) -> None:
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError as exc:
        raise ValidationError("Give an IP address (10.1.2.3) or a network (10.1.2.0/24, fd00::/64).") from exc


class DicomPeer(models.Model):
    """A DICOM node that may send to the C-STORE receiver: one calling AE title from one address or network.

    Both must match, at association time: an AE title alone is only a name any host can claim.
    No active peer means no association is accepted (see docs/deployment.md).
    """

    ae_title = models.CharField(
        "calling AE title", max_length=16, validators=[validate_ae_title], help_text="Exactly as the peer sends it."
    )
    network = models.CharField(
        "address or network",
        max_length=49,
        validators=[validate_network],
        help_text="The peer's IP address (10.1.2.3) or network in CIDR form (10.1.2.0/24).",
    )
    description = models.CharField(max_length=255, blank=True, help_text="e.g. the modality and its room.")
    port = models.PositiveIntegerField(
        "storage port",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(65535)],
        help_text="The port of the peer's own Storage SCP, to make it a C-MOVE destination (its address must be "
        "a single host). Empty: nothing is ever sent to it.",
    )
    active = models.BooleanField(default=True, help_text="Untick to refuse this peer without losing the entry.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["ae_title", "network"]
        verbose_name = "DICOM peer"
        constraints = [
            models.UniqueConstraint(fields=["ae_title", "network"], name="dicompeer_unique_title_network"),
            models.CheckConstraint(condition=~Q(ae_title=""), name="dicompeer_ae_title_not_empty"),
            # A C-MOVE destination is one host: MedPortal connects to it.
            models.CheckConstraint(
                condition=Q(port__isnull=True) | Q(network__endswith="/32") | Q(network__endswith="/128"),
                name="dicompeer_port_needs_one_host",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ae_title} @ {self.network}"

    def clean(self) -> None:
        super().clean()
        # One spelling per network, so the unique constraint sees 10.1.2.3 and 10.1.2.3/32 as one.
        self.ae_title = self.ae_title.strip()
        with contextlib.suppress(ValueError):  # the field's validator reports it
            self.network = str(ipaddress.ip_network(self.network.strip(), strict=False))
        if self.port is not None and self.host is None:
            raise ValidationError({"port": "A C-MOVE destination has one address (10.1.2.3), not a network."})

    @property
    def host(self) -> str | None:
        """The peer's one address, or None when it is a network."""
        try:
            network = ipaddress.ip_network(self.network, strict=False)
        except ValueError:
            return None
        return str(network.network_address) if network.num_addresses == 1 else None

    def admits(self, address: str) -> bool:
        """Whether a connection from ``address`` comes from this peer's address or network."""
        try:
            ip = ipaddress.ip_address(address)
            network = ipaddress.ip_network(self.network, strict=False)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # an IPv4 peer reaching a dual-stack socket
        return ip.version == network.version and ip in network


class HoldReason(models.TextChoices):
    PATIENT_MISMATCH = "patient_mismatch", "Name or birth date differ from the patient with this PatientID"
    STUDY_MISMATCH = "study_mismatch", "Its study belongs to another patient"


class HoldStatus(models.TextChoices):
    HELD = "held", "Held"
    FILED = "filed", "Filed under the patient"
    REJECTED = "rejected", "Rejected, file deleted"


class HeldInstance(models.Model):
    """A DICOM instance that names an existing patient but does not match them, kept aside unfiled.

    Filing it under the PatientID alone could put one person's images in another's record. An
    administrator decides: file it under that patient (the same person, e.g. a corrected name),
    or reject it, which deletes the file. Only instances filed by their own tags are held
    (C-STORE, STOW-RS, Import DICOM); an upload into a study is refused outright.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    file = models.FileField(max_length=255, blank=True, help_text="The instance as received; removed on rejection.")
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    sop_instance_uid = models.CharField("SOP Instance UID", max_length=64, db_index=True)
    study_instance_uid = models.CharField("Study Instance UID", max_length=64)
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="+", help_text="The patient on record it was matched against."
    )
    study = models.ForeignKey(
        Study, on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="The study it clashed with."
    )
    reason = models.CharField(max_length=32, choices=HoldReason.choices)
    detail = models.TextField(help_text="What differs, for the administrator.")
    source = models.CharField(max_length=16, choices=ImageSource.choices)
    peer = models.CharField(max_length=120, blank=True, help_text="The DICOM node that sent it: AE title and address.")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=16, choices=HoldStatus.choices, default=HoldStatus.HELD)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    image = models.ForeignKey(
        Image, on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="Once filed."
    )

    class Meta:
        ordering = ["-received_at"]
        verbose_name = "held DICOM instance"
        indexes = [models.Index(fields=["status", "received_at"], name="heldinstance_status_received")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=HoldStatus.values), name="heldinstance_status_valid"),
            models.CheckConstraint(condition=Q(reason__in=HoldReason.values), name="heldinstance_reason_valid"),
            models.CheckConstraint(condition=Q(source__in=ImageSource.values), name="heldinstance_source_valid"),
            models.CheckConstraint(
                condition=~Q(status=HoldStatus.FILED) | Q(image__isnull=False), name="heldinstance_filed_has_image"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sop_instance_uid} ({self.get_reason_display()})"
