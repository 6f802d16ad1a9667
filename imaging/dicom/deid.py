"""De-identification following the DICOM PS3.15 Basic Application Level Confidentiality Profile.

Identifying attributes are removed or emptied; the patient gets a pseudonym and every
instance-specific UID a replacement, both derived with a keyed hash so that the same
patient and the same study give the same pseudonyms in every export (studies stay linked
across exports) while nobody without the key can go back.
"""

import hashlib
import hmac

from django.conf import settings
from pydicom import Dataset
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.uid import UID

# PS3.15 Table E.1-1, Basic Profile column: X = remove, Z = empty. UIDs (U) and the
# patient's identity (pseudonyms) are handled below; PN values are emptied wherever they are.
REMOVE = frozenset(
    """
    AcquisitionComments AcquisitionContextSequence AcquisitionDate AcquisitionDateTime
    AcquisitionDeviceProcessingDescription AcquisitionProtocolDescription AcquisitionTime
    ActualHumanPerformersSequence AdditionalPatientHistory AdmissionID AdmittingDate
    AdmittingDiagnosesCodeSequence AdmittingDiagnosesDescription AdmittingTime Allergies Arbitrary
    AuthorObserverSequence BranchOfService CassetteID ConfidentialityConstraintOnPatientDataDescription
    ContentCreatorIdentificationCodeSequence ContributionDescription CountryOfResidence CurrentPatientLocation
    CurveDate CurveTime CustodialOrganizationSequence DataSetTrailingPadding DerivationDescription DetectorID
    DeviceSerialNumber DigitalSignaturesSequence DischargeDiagnosisDescription DistributionAddress
    DistributionName EthnicGroup FrameComments GantryID GeneratorID HumanPerformerOrganization
    IconImageSequence IdentifyingComments ImageComments ImagePresentationComments
    ImagingServiceRequestComments Impressions InstitutionAddress InstitutionalDepartmentName
    InstitutionCodeSequence InstitutionName InsurancePlanIdentification
    IntendedRecipientsOfResultsIdentificationSequence InterpretationApproverSequence InterpretationAuthor
    InterpretationDiagnosisDescription InterpretationIDIssuer InterpretationRecorder InterpretationText
    InterpretationTranscriber IssuerOfAdmissionID IssuerOfPatientID IssuerOfServiceEpisodeID MedicalAlerts
    MedicalRecordLocator MilitaryRank ModifiedAttributesSequence ModifyingDeviceID ModifyingDeviceManufacturer
    NameOfPhysiciansReadingStudy NamesOfIntendedRecipientsOfResults Occupation OperatorIdentificationSequence
    OperatorsName OriginalAttributesSequence OrderCallbackPhoneNumber OrderEnteredBy OrderEntererLocation
    OtherPatientIDs OtherPatientIDsSequence OtherPatientNames OverlayComments OverlayDate OverlayTime
    ParticipantSequence PatientAddress PatientAge PatientComments PatientBirthName PatientBirthTime
    PatientInsurancePlanCodeSequence PatientMotherBirthName PatientPrimaryLanguageCodeSequence
    PatientReligiousPreference PatientSexNeutered PatientSize PatientState PatientTelephoneNumbers
    PatientTelecomInformation PatientTransportArrangements PatientWeight PerformedLocation
    PerformedProcedureStepDescription PerformedProcedureStepEndDate PerformedProcedureStepEndTime
    PerformedProcedureStepID PerformedProcedureStepStartDate PerformedProcedureStepStartTime
    PerformedStationAETitle PerformedStationGeographicLocationCodeSequence PerformedStationName
    PerformedStationNameCodeSequence PerformingPhysicianIdentificationSequence PerformingPhysicianName
    PersonAddress PersonIdentificationCodeSequence PersonName PersonTelephoneNumbers
    PhysicianApprovingInterpretation PhysiciansOfRecord PhysiciansOfRecordIdentificationSequence
    PhysiciansReadingStudyIdentificationSequence PlateID PreMedication PregnancyStatus ProtocolName
    ReasonForImagingServiceRequest ReasonForStudy ReferencedDigitalSignatureSequence
    ReferencedPatientAliasSequence ReferencedPatientPhotoSequence ReferencedPatientSequence
    ReferencedSOPInstanceMACSequence ReferencedStudySequence ReferringPhysicianAddress
    ReferringPhysicianIdentificationSequence ReferringPhysicianTelephoneNumbers RegionOfResidence
    RequestAttributesSequence RequestedContrastAgent RequestedProcedureComments RequestedProcedureID
    RequestedProcedureLocation RequestingPhysician RequestingService ResponsibleOrganization ResponsiblePerson
    ResultsComments ResultsDistributionListSequence ResultsIDIssuer ScheduledHumanPerformersSequence
    ScheduledPatientInstitutionResidence ScheduledPerformingPhysicianIdentificationSequence
    ScheduledPerformingPhysicianName ScheduledProcedureStepEndDate ScheduledProcedureStepEndTime
    ScheduledProcedureStepLocation ScheduledProcedureStepStartDate ScheduledProcedureStepStartTime
    ScheduledStationAETitle ScheduledStationGeographicLocationCodeSequence ScheduledStationName
    ScheduledStationNameCodeSequence ScheduledStudyLocation ScheduledStudyLocationAETitle SeriesDate
    SeriesDescription SeriesTime ServiceEpisodeDescription ServiceEpisodeID SmokingStatus SourceImageSequence
    SpecialNeeds StationName StudyComments StudyDescription StudyIDIssuer TextComments TextString TopicAuthor
    TopicKeywords TopicSubject TopicTitle VerifyingOrganization VisitComments InstanceCreationDate
    InstanceCreationTime InstanceCreatorUID
    """.split()  # noqa: SIM905 - PS3.15 keywords read best as the table lists them
)
EMPTY = frozenset(
    """
    AccessionNumber ContentDate ContentTime FillerOrderNumberImagingServiceRequest PatientBirthDate PatientSex
    PlacerOrderNumberImagingServiceRequest ReferringPhysicianName StudyDate StudyID StudyTime
    VerifyingObserverName ContentCreatorName
    """.split()  # noqa: SIM905 - PS3.15 keywords read best as the table lists them
)

DEIDENTIFICATION_METHOD = "DICOM PS3.15 E.1 Basic Application Level Confidentiality Profile"


def _keyed(namespace: str, value: str) -> bytes:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"{namespace}:{value}".encode(), hashlib.sha256).digest()


def pseudonym(patient_id: str) -> str:
    return "ANON-" + _keyed("patient", patient_id).hex()[:12].upper()


def pseudonymous_uid(uid: str) -> str:
    # 2.25 UIDs are derived from a 128-bit number (PS3.5 B.2).
    return "2.25." + str(int.from_bytes(_keyed("uid", uid)[:16], "big"))


def _registered_uid(value: str) -> bool:
    """SOP classes, transfer syntaxes, coding schemes: standard UIDs that identify no one."""
    uid = UID(value)
    return bool(uid.name) and uid.name != value


def _clean(dataset: Dataset) -> None:
    for element in list(dataset):
        keyword = keyword_for_tag(element.tag)
        group = element.tag.group
        if (
            element.tag.is_private
            or 0x5000 <= group <= 0x50FF
            or (0x6000 <= group <= 0x60FF and element.tag.element in (0x3000, 0x4000))
        ):
            del dataset[element.tag]  # private tags, curves, overlay data and comments
        elif keyword in REMOVE:
            del dataset[element.tag]
        elif keyword in EMPTY or element.VR == "PN":
            dataset[element.tag] = DataElement(element.tag, element.VR, None)
        elif element.VR == "UI" and element.value:
            _replace_uids(element)
        elif element.VR == "SQ":
            for item in element.value:
                _clean(item)


def _replace_uids(element: DataElement) -> None:
    values = element.value if element.VM > 1 else [element.value]
    replaced = [v if _registered_uid(str(v)) else pseudonymous_uid(str(v)) for v in values]
    element.value = replaced if element.VM > 1 else replaced[0]


def dataset_deidentify(dataset: Dataset) -> Dataset:
    """De-identify ``dataset`` in place (file meta included) and return it."""
    original_id = str(dataset.get("PatientID") or "")
    _clean(dataset)
    alias = pseudonym(original_id or str(dataset.get("StudyInstanceUID", "")))
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
    meta = getattr(dataset, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    return dataset


def has_burned_in_annotation(dataset: Dataset) -> bool:
    # The basic profile does not clean pixels; an image that says it carries text in its pixels stays out.
    return str(dataset.get("BurnedInAnnotation", "")).strip().upper() == "YES"
