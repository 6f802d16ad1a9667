"""Who may do what with patient data: the one table the pages, the API, DICOMweb and the admin consult.

Pages name ``allowed_roles(resource, act)`` in ``role_required``, API and DICOMweb views in
``required_roles``, and the admin's ModelAdmins of patient data derive their view, add, change and
delete permissions from it (``PolicyAdminMixin``). Only administrators sign in to the admin at all
(``is_staff`` goes with the admin role, accounts.services); inside it the table rules as everywhere.
tests/api/test_policy.py checks every interface against the table, role by role.

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
    # A DICOM instance held because it did not match the patient its PatientID names (imaging.models).
    HELD_INSTANCE = "held_instance"
    # The DICOM nodes allowed to associate with the receiver (imaging.models.DicomPeer): who gets in.
    DICOM_PEER = "dicom_peer"


class Act(StrEnum):
    SEARCH = "search"  # list or search many records
    READ = "read"  # one record
    WRITE = "write"  # create or change
    DELETE = "delete"


POLICY: dict[tuple[Resource, Act], tuple[Role, ...]] = {
    (Resource.PATIENT, Act.SEARCH): STAFF,
    (Resource.PATIENT, Act.READ): READERS,
    (Resource.PATIENT, Act.WRITE): STAFF,
    (Resource.PATIENT, Act.DELETE): ADMINS,
    (Resource.STUDY, Act.SEARCH): READERS,
    (Resource.STUDY, Act.READ): READERS,
    (Resource.STUDY, Act.WRITE): STAFF,
    (Resource.STUDY, Act.DELETE): ADMINS,
    (Resource.IMAGE, Act.SEARCH): READERS,
    (Resource.IMAGE, Act.READ): READERS,
    (Resource.IMAGE, Act.WRITE): STAFF,
    (Resource.IMAGE, Act.DELETE): ADMINS,
    (Resource.PREDICTION, Act.SEARCH): READERS,
    (Resource.PREDICTION, Act.READ): READERS,
    # Queueing a new AI second opinion (a re-run); what a model said is never edited.
    (Resource.PREDICTION, Act.WRITE): READERS,
    (Resource.REVIEW, Act.SEARCH): READERS,
    (Resource.REVIEW, Act.READ): READERS,
    (Resource.REVIEW, Act.WRITE): RADIOLOGISTS,
    (Resource.AUDIT, Act.SEARCH): ADMINS,
    (Resource.AUDIT, Act.READ): ADMINS,
    # Reconciling: filing a held instance under the patient, or rejecting it (its file goes, its record stays).
    (Resource.HELD_INSTANCE, Act.SEARCH): ADMINS,
    (Resource.HELD_INSTANCE, Act.READ): ADMINS,
    (Resource.HELD_INSTANCE, Act.WRITE): ADMINS,
    (Resource.DICOM_PEER, Act.SEARCH): ADMINS,
    (Resource.DICOM_PEER, Act.READ): ADMINS,
    (Resource.DICOM_PEER, Act.WRITE): ADMINS,
    (Resource.DICOM_PEER, Act.DELETE): ADMINS,
}
# Nothing not in the table is allowed: nobody deletes an AI output, a review or an audit record, and
# nobody writes an audit record. Deletes of patients, studies and images exist in the admin only (a
# record with audit rows is protected from them by the database).


def allowed_roles(resource: Resource, act: Act) -> tuple[Role, ...]:
    """The roles that may ``act`` on ``resource``; () when nobody may."""
    return POLICY.get((resource, act), ())


def may(user, resource: Resource, act: Act) -> bool:
    return bool(user and user.is_authenticated) and any(user.has_role(role) for role in allowed_roles(resource, act))


def may_amend_review(user, review) -> bool:
    """A review is the radiologist's own signed decision: only the radiologist who made it corrects it,
    never a colleague, and never an administrator on their behalf (they hold every role, not the authorship)."""
    return may(user, Resource.REVIEW, Act.WRITE) and review.reviewer_id == user.id


class PolicyAdminMixin:
    """ModelAdmin permissions from the table, for the admin's pages of patient data.

    Set ``policy_resource``. The change list (and the autocomplete, both searches) asks SEARCH, a
    record's page READ, adding and changing WRITE, deleting DELETE. A ModelAdmin may narrow a door
    further (images are only added through the upload service), never widen it.
    """

    policy_resource: Resource

    def has_view_permission(self, request, obj=None) -> bool:
        return may(request.user, self.policy_resource, Act.SEARCH if obj is None else Act.READ)

    def has_add_permission(self, request, *args) -> bool:  # an inline's gets the parent object too
        return may(request.user, self.policy_resource, Act.WRITE)

    def has_change_permission(self, request, obj=None) -> bool:
        return may(request.user, self.policy_resource, Act.WRITE)

    def has_delete_permission(self, request, obj=None) -> bool:
        return may(request.user, self.policy_resource, Act.DELETE)

    def has_view_or_change_permission(self, request, obj=None) -> bool:
        # Seeing the list or a record is SEARCH or READ, whoever may change it.
        return self.has_view_permission(request, obj)

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)
