"""De-identification following the DICOM PS3.15 Basic Application Level Confidentiality Profile.

The attributes and their actions are PS3.15 table E.1-1 as dicom-anonymizer ships it (the
2026c edition). Its own ``anonymize_dataset`` is not used: it applies the table to the top
level only (identifiers inside sequences would survive), replaces UIDs with random ones held
in a process-wide dict (no consistency across exports) and turns removed dates into dummies.
The walk below applies every action at every depth and keys pseudonyms and UIDs with
``MEDPORTAL_DEID_KEY`` (never ``SECRET_KEY``), so the same study gives the same UIDs in every
export made with the same key, while nobody without the key can go back.

Beyond the table, and on purpose stricter than it: every private tag, every repeating curve
(50xx) and overlay (60xx) group whole, every person name, every date or time the table does not
name, every free-text value the table does not name, and every non-standard UID are removed,
emptied or replaced; the file meta is rebuilt from scratch. No pixel is cleaned: images that may
carry text in their pixels are withheld by the export (``burned_in_text_risk``).
"""

import hashlib
import hmac

from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

TABLE_EDITION = "dicomfields_2026c"
DEIDENTIFICATION_METHOD = "DICOM PS3.15 E.1 Basic Application Level Confidentiality Profile"

# The library's categories, named by the table's action codes.
_CATEGORIES = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}
# Attributes of E.1-1 the library's edition of the table lacks.
_ADDED = {Tag(0x0040, 0xA160): "X"}  # Text Value


def _profile() -> tuple[dict[BaseTag, str], list[tuple[int, int, int, int, str]]]:
    exact: dict[BaseTag, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    database = dicom_anonymization_database_selector(TABLE_EDITION)
    for category, action in _CATEGORIES.items():
        for entry in database[category]:
            if len(entry) == 4:
                masked.append((*entry, action))
            else:
                exact[Tag(*entry)] = action
    exact.update(_ADDED)
    return exact, masked


PROFILE, MASKED_PROFILE = _profile()

# What a combined action comes to when the IOD's type of the attribute is not looked up: the
# choice that keeps a Type 1 attribute present (dummy) and a Type 2 one present (empty).
_RESOLVED = {"Z/D": "D", "X/D": "D", "X/Z/D": "D", "X/Z": "Z", "X/Z/U*": "U*"}

_DUMMY_TEXT = "ANONYMOUS"
_DUMMIES = {
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
    "UR": "https://anonymous.invalid",
}
_NUMBERS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"})
_BYTES = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
_TEMPORAL = frozenset({"DA", "TM", "DT"})
_FREE_TEXT = frozenset({"LT", "ST", "UT"})


def action_for(tag: BaseTag) -> str | None:
    """The Basic Profile action for ``tag`` (``D``, ``Z``, ``X``, ``U`` or a combined one), if it has one."""
    action = PROFILE.get(tag)
    if action is not None:
        return action
    for group, element, group_mask, element_mask, masked_action in MASKED_PROFILE:
        if tag.group & group_mask == group & group_mask and tag.element & element_mask == element & element_mask:
            return masked_action
    return None


def _key() -> bytes:
    key = getattr(settings, "MEDPORTAL_DEID_KEY", "")
    if not key:
        raise ImproperlyConfigured("MEDPORTAL_DEID_KEY must be set to export de-identified data.")
    return key.encode()


def _keyed(namespace: str, value: str) -> bytes:
    return hmac.new(_key(), f"{namespace}:{value}".encode(), hashlib.sha256).digest()


def pseudonym(patient_id: str) -> str:
    return "ANON-" + _keyed("patient", patient_id).hex()[:12].upper()


def pseudonymous_uid(uid: str) -> str:
    # 2.25 UIDs are derived from a 128-bit number (PS3.5 B.2).
    return "2.25." + str(int.from_bytes(_keyed("uid", uid)[:16], "big"))


def _registered_uid(value: str) -> bool:
    """SOP classes, transfer syntaxes, coding schemes: standard UIDs that identify no one."""
    uid = UID(value)
    return bool(uid.name) and uid.name != value


def _uid(value) -> str:
    text = str(value).strip()
    return text if _registered_uid(text) else pseudonymous_uid(text)


def _replace_uids(element: DataElement) -> None:
    if element.value in (None, ""):
        return
    if element.VM > 1:
        element.value = [_uid(value) for value in element.value]
    else:
        element.value = _uid(element.value)


def _dummy(element: DataElement) -> None:
    """D: a non-empty value of the element's VR that says nothing."""
    vr = element.VR
    if vr == "SQ":
        for item in element.value:
            _dummy_item(item)
    elif vr == "UI":
        _replace_uids(element)
    elif vr in _DUMMIES:
        element.value = _DUMMIES[vr]
    elif vr in _NUMBERS:
        element.value = 0
    elif vr in _BYTES:
        element.value = b"\0\0"
    else:  # AE, CS, LO, LT, PN, SH, ST, UC, UT and anything newer
        element.value = _DUMMY_TEXT


def _dummy_item(item: Dataset) -> None:
    for element in list(item):
        if element.tag.is_private:
            del item[element.tag]
        else:
            _dummy(item[element.tag])


def _empty(element: DataElement) -> None:
    element.value = Sequence() if element.VR == "SQ" else None


def _clean(dataset: Dataset) -> None:
    for tag in list(dataset.keys()):
        element = dataset[tag]  # converts a raw element, so its VR is known
        group = tag.group
        if tag.is_private or group in (0x0000, 0x0002) or 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
            # Private tags, and whole curve and overlay groups: the table names only some of their
            # elements, and what is left of a group (rows, origin, description) is useless or worse.
            # Command (0000) and file meta (0002) elements have no place in the data set itself.
            del dataset[tag]
            continue
        action = action_for(tag)
        action = _RESOLVED.get(action, action)
        vr = element.VR
        if action == "X":
            del dataset[tag]
        elif action == "Z":
            _empty(element)
        elif action == "D":
            _dummy(element)
        elif vr == "SQ":  # U*, K or not in the table: the items are cleaned like the data set
            for item in element.value:
                _clean(item)
        elif action in ("U", "U*") or (action is None and vr == "UI"):
            _replace_uids(element)
        elif action is not None:
            continue  # K
        elif vr == "PN":
            _empty(element)
        elif vr in _FREE_TEXT:
            del dataset[tag]
        elif vr in _TEMPORAL and element.value not in (None, ""):
            _dummy(element)


def _clean_file_meta(dataset: Dataset) -> None:
    """A new file meta with only what reading the file needs: no source AE title, no private info."""
    old = getattr(dataset, "file_meta", None)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    if old is not None and "TransferSyntaxUID" in old:
        meta.TransferSyntaxUID = old.TransferSyntaxUID
    # ImplementationClassUID and ImplementationVersionName are pydicom's, filled in on writing.
    dataset.file_meta = meta


def dataset_deidentify(dataset: Dataset) -> Dataset:
    """De-identify ``dataset`` in place (file meta included) and return it."""
    original_id = str(dataset.get("PatientID") or "")
    original_study = str(dataset.get("StudyInstanceUID") or "")
    _clean(dataset)
    alias = pseudonym(original_id or original_study)
    dataset.PatientID = alias
    dataset.PatientName = alias
    dataset.PatientIdentityRemoved = "YES"
    dataset.LongitudinalTemporalInformationModified = "REMOVED"
    dataset.DeidentificationMethod = DEIDENTIFICATION_METHOD
    method = Dataset()
    method.CodeValue = "113100"
    method.CodingSchemeDesignator = "DCM"
    method.CodeMeaning = "Basic Application Confidentiality Profile"
    dataset.DeidentificationMethodCodeSequence = [method]
    _clean_file_meta(dataset)
    return dataset


# Secondary capture (screenshots, scanned documents) and ultrasound carry text in their pixels
# so often that their BurnedInAnnotation cannot be trusted.
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_ULTRASOUND_PREFIXES = ("1.2.840.10008.5.1.4.1.1.6.", "1.2.840.10008.5.1.4.1.1.3.")
_ALWAYS_REVIEWED_MODALITIES = {"US": "ultrasound", "IVUS": "ultrasound", "SC": "secondary capture"}


def burned_in_text_risk(dataset: Dataset) -> str | None:
    """Why the pixels may show identifying text, or None when the file says they do not and can be believed.

    The basic profile cleans no pixel, so such an image stays out of a de-identified export
    until someone has looked at it.
    """
    modality = str(dataset.get("Modality") or "").strip().upper()
    sop_class = str(dataset.get("SOPClassUID") or "")
    if modality in _ALWAYS_REVIEWED_MODALITIES:
        return f"{_ALWAYS_REVIEWED_MODALITIES[modality]}: text is often burned into the pixels"
    if sop_class.startswith(_SECONDARY_CAPTURE_PREFIX):
        return "secondary capture: text is often burned into the pixels"
    if sop_class.startswith(_ULTRASOUND_PREFIXES):
        return "ultrasound: text is often burned into the pixels"
    flag = str(dataset.get("BurnedInAnnotation") or "").strip().upper()
    if flag == "YES":
        return "the file says text is burned into the pixels"
    if flag != "NO":
        return "the file does not say that no text is burned into the pixels (BurnedInAnnotation)"
    return None


def uid_pseudonym(uid: str) -> str:
    """The UID an export gives ``uid`` (for naming files and manifest lines)."""
    return _uid(uid)
