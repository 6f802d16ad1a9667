import datetime

from django.db import transaction

from accounts.models import User
from patients.models import Patient, Sex


@transaction.atomic
def patient_create(
    *,
    mrn: str,
    family_name: str,
    given_name: str = "",
    birth_date: datetime.date | None = None,
    sex: Sex | str = Sex.UNKNOWN,
    created_by: User | None = None,
) -> Patient:
    patient = Patient(
        mrn=mrn.strip(),
        family_name=family_name.strip(),
        given_name=given_name.strip(),
        birth_date=birth_date,
        sex=sex,
        created_by=created_by,
    )
    patient.full_clean()
    patient.save()
    return patient


_EDITABLE = {"mrn", "family_name", "given_name", "birth_date", "sex"}


@transaction.atomic
def patient_update(*, patient: Patient, **changes: object) -> Patient:
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise TypeError(f"Not editable: {', '.join(sorted(unknown))}")
    for field, value in changes.items():
        setattr(patient, field, value.strip() if isinstance(value, str) else value)
    patient.full_clean()
    patient.save()
    return patient
