"""Demo users and records for the embedded default, so a fresh install has something to show."""

import datetime
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from pydicom.data import get_testdata_file

from accounts.models import User
from accounts.roles import Role
from accounts.services import roles_ensure, user_create
from imaging.intake import IncomingFile, files_intake, image_upload
from imaging.models import BodyPart, ImageSource, Modality, Priority, Procedure, Study
from imaging.services import study_create
from patients.models import Patient, Sex
from patients.services import patient_create

SAMPLES = Path(settings.BASE_DIR) / "samples"
DEMO_PASSWORD = "medportal-demo"  # noqa: S105 - demo accounts exist only on the embedded default


@dataclass(frozen=True)
class DemoStudy:
    accession: str
    modality: str
    body_part: str
    procedure: str
    priority: int
    description: str
    samples: tuple[str, ...]


DEMO_PATIENTS = [
    ("DEMO-0001", "Okafor", "Adaeze", datetime.date(2019, 3, 14), Sex.FEMALE),
    ("DEMO-0002", "Lindqvist", "Erik", datetime.date(1958, 11, 2), Sex.MALE),
    ("DEMO-0003", "Haddad", "Mira", datetime.date(1984, 6, 30), Sex.FEMALE),
]
DEMO_STUDIES = {
    "DEMO-0001": [
        DemoStudy("DEMO-A1001", Modality.CR, BodyPart.CHEST, Procedure.GENERAL, Priority.URGENT,
                  "Chest X-ray, cough and fever", ("cxr-pneumonia-1.png",)),
    ],
    "DEMO-0002": [
        DemoStudy("DEMO-A2001", Modality.DMS, BodyPart.SKIN, Procedure.GENERAL, Priority.ROUTINE,
                  "Dermoscopy, changing naevus on the back", ("derm-mel-1.jpg",)),
        DemoStudy("DEMO-A2002", Modality.SM, BodyPart.BLOOD, Procedure.MALARIA_SCREEN, Priority.STAT,
                  "Thin smear, fever after travel", ("malaria-parasitized-1.png",)),
    ],
    "DEMO-0003": [
        DemoStudy("DEMO-A3001", Modality.US, BodyPart.BREAST, Procedure.GENERAL, Priority.ROUTINE,
                  "Breast ultrasound, palpable lump", ("us-breast-benign-1.png",)),
    ],
}  # fmt: skip
# Real DICOM instances from pydicom's wheel (a CT and an MR slice), filed by their own tags like any
# DICOM import, so the demo has studies to open in the DICOM viewer (/viewer/).
DEMO_DICOM = ("CT_small.dcm", "MR_small.dcm")


def demo_users_ensure() -> list[tuple[str, Role]]:
    roles_ensure()
    created = []
    for username, role, first, last in [
        ("staff", Role.STAFF, "Sam", "Staff"),
        ("radiologist", Role.RADIOLOGIST, "Rita", "Radiologist"),
        ("admin", Role.ADMIN, "Ada", "Admin"),
    ]:
        if not User.objects.filter(username=username).exists():
            user_create(username=username, password=DEMO_PASSWORD, role=role, first_name=first, last_name=last)
        created.append((username, role))
    return created


@transaction.atomic
def demo_records_ensure() -> int:
    """Create the demo patients and studies and upload their sample images (idempotent)."""
    staff = User.objects.get(username="staff")
    uploaded = 0
    for mrn, family, given, birth_date, sex in DEMO_PATIENTS:
        patient = Patient.objects.filter(mrn=mrn).first() or patient_create(
            mrn=mrn, family_name=family, given_name=given, birth_date=birth_date, sex=sex, created_by=staff
        )
        for demo in DEMO_STUDIES[mrn]:
            study = Study.objects.filter(accession_number=demo.accession).first() or study_create(
                patient=patient,
                accession_number=demo.accession,
                modality=demo.modality,
                body_part=demo.body_part,
                procedure=demo.procedure,
                priority=demo.priority,
                description=demo.description,
                study_date=datetime.date.today(),  # noqa: DTZ011 - a calendar date for the demo
                created_by=staff,
            )
            for name in demo.samples:
                result = image_upload(study=study, data=(SAMPLES / name).read_bytes(), filename=name, uploaded_by=staff)
                uploaded += int(result.created)
    files = [
        IncomingFile.from_bytes(Path(get_testdata_file(name, download=False)).read_bytes(), filename=name)
        for name in DEMO_DICOM
    ]
    results = files_intake(files=files, source=ImageSource.UPLOAD, uploaded_by=staff)
    return uploaded + sum(int(result.created) for result in results)
