"""Who may do what with patient data: the one table the pages, the API and DICOMweb consult.

The Django admin is for administrators, who hold every role; reviews and audit records are read-only there too.

A patient search (the list of patients, filtered by name, MRN or birth date, and QIDO-RS matching on
PatientID or PatientName) is for staff only: registering patients and finding the right record is
their work, and a free search lets whoever holds it browse the whole hospital. Radiologists reach
patients through the studies they read (worklist, study, review), so they may read one patient's
record and every study, but not search the register. The worklist's search box is a study search
within the worklist (it opens to those who write reviews): it matches a patient's name only among
the studies still awaiting reading, and reviewed studies by MRN or accession number alone.
"""

from enum import StrEnum

from accounts.roles import ADMINS, RADIOLOGISTS, READERS, STAFF, Role


class Resource(StrEnum):
    PATIENT = "patient"
    STUDY = "study"
    IMAGE = "image"
    PREDICTION = "prediction"
    REVIEW = "review"
    AUDIT = "audit"


class Act(StrEnum):
    SEARCH = "search"  # list or search many records
    READ = "read"  # one record
    WRITE = "write"  # create or change
    DELETE = "delete"


POLICY: dict[tuple[Resource, Act], tuple[Role, ...]] = {
    (Resource.PATIENT, Act.SEARCH): STAFF,
    (Resource.PATIENT, Act.READ): READERS,
    (Resource.PATIENT, Act.WRITE): STAFF,
    (Resource.STUDY, Act.SEARCH): READERS,
    (Resource.STUDY, Act.READ): READERS,
    (Resource.STUDY, Act.WRITE): STAFF,
    (Resource.IMAGE, Act.READ): READERS,
    (Resource.IMAGE, Act.WRITE): STAFF,
    (Resource.PREDICTION, Act.READ): READERS,
    (Resource.REVIEW, Act.READ): READERS,
    (Resource.REVIEW, Act.WRITE): RADIOLOGISTS,
    (Resource.AUDIT, Act.SEARCH): ADMINS,
    (Resource.AUDIT, Act.READ): ADMINS,
}
# Nothing not in the table is allowed; in particular nobody deletes a review or an audit record.


def allowed_roles(resource: Resource, act: Act) -> tuple[Role, ...]:
    """The roles that may ``act`` on ``resource``; () when nobody may."""
    return POLICY.get((resource, act), ())


def may(user, resource: Resource, act: Act) -> bool:
    return bool(user and user.is_authenticated) and any(user.has_role(role) for role in allowed_roles(resource, act))


def may_amend_review(user, review) -> bool:
    """A review is the radiologist's own signed decision: only the radiologist who made it corrects it,
    never a colleague, and never an administrator on their behalf (they hold every role, not the authorship)."""
    return may(user, Resource.REVIEW, Act.WRITE) and review.reviewer_id == user.id
