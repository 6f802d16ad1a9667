"""Every list, search, worklist, dashboard and QIDO request the scale benchmark times.

Each entry: (name, who, path). ``who`` is ``api:<role>`` (a token), ``page:<role>`` (a session) or
``dicomweb:<role>`` (a token). Paths may use the seeded ids as ``{patient}``, ``{dicom_study_uid}`` …
"""

LIST_PAGE_SIZES = (10, 100)

ENDPOINTS: tuple[tuple[str, str, str], ...] = (
    # --- API: patients
    ("API patients, page 1", "api:staff", "/api/v1/patients/"),
    ("API patients, search name", "api:staff", "/api/v1/patients/?search=Smi"),
    ("API patients, search MRN", "api:staff", "/api/v1/patients/?search={patient_mrn}"),
    ("API patients, exact MRN", "api:staff", "/api/v1/patients/?mrn={patient_mrn}"),
    ("API patients, sex", "api:staff", "/api/v1/patients/?sex=F"),
    # --- API: studies
    ("API studies, page 1", "api:staff", "/api/v1/studies/"),
    ("API studies, status", "api:staff", "/api/v1/studies/?status=ai_done"),
    ("API studies, modality", "api:staff", "/api/v1/studies/?modality=MR"),
    ("API studies, priority", "api:staff", "/api/v1/studies/?priority=1"),
    ("API studies, patient", "api:staff", "/api/v1/studies/?patient={patient}"),
    ("API studies, MRN", "api:staff", "/api/v1/studies/?mrn={patient_mrn}"),
    ("API studies, search", "api:staff", "/api/v1/studies/?search=brain"),
    ("API studies, created range", "api:staff", "/api/v1/studies/?created_after={week_ago}"),
    ("API studies, by study date", "api:staff", "/api/v1/studies/?ordering=-study_date"),
    # --- API: images
    ("API images, page 1", "api:staff", "/api/v1/images/"),
    ("API images, study", "api:staff", "/api/v1/images/?study={worklist_study}"),
    ("API images, modality", "api:staff", "/api/v1/images/?modality=MR"),
    # --- API: predictions
    ("API predictions, page 1", "api:staff", "/api/v1/predictions/"),
    ("API predictions, succeeded", "api:staff", "/api/v1/predictions/?status=succeeded"),
    ("API predictions, failed", "api:staff", "/api/v1/predictions/?status=failed"),
    (
        "API predictions, unreviewed abnormal",
        "api:staff",
        "/api/v1/predictions/?status=succeeded&is_abnormal=true&reviewed=false",
    ),
    ("API predictions, reviewed", "api:staff", "/api/v1/predictions/?reviewed=true"),
    ("API predictions, model", "api:staff", "/api/v1/predictions/?model_name={model_name}"),
    ("API predictions, study", "api:staff", "/api/v1/predictions/?study={worklist_study}"),
    ("API predictions, modality", "api:staff", "/api/v1/predictions/?modality=MR"),
    ("API predictions, newest finished", "api:staff", "/api/v1/predictions/?ordering=-finished"),
    # --- API: reviews, models, worklist, audit
    ("API reviews, page 1", "api:staff", "/api/v1/reviews/"),
    ("API reviews, overrides", "api:staff", "/api/v1/reviews/?decision=override"),
    ("API models", "api:staff", "/api/v1/models/"),
    ("API worklist", "api:radiologist", "/api/v1/worklist/"),
    ("API worklist, STAT", "api:radiologist", "/api/v1/worklist/?priority=1"),
    ("API worklist, modality", "api:radiologist", "/api/v1/worklist/?modality=MR"),
    ("API audit events", "api:admin", "/api/v1/audit-events/"),
    ("API audit events, patient", "api:admin", "/api/v1/audit-events/?patient={patient}"),
    ("API audit events, actor", "api:admin", "/api/v1/audit-events/?actor=scale-staff&action=read"),
    # --- pages
    ("Staff dashboard", "page:staff", "/"),
    ("Radiologist dashboard", "page:radiologist", "/"),
    ("Admin dashboard", "page:admin", "/"),
    ("Patients page", "page:staff", "/patients/"),
    ("Patients page 500", "page:staff", "/patients/?page=500"),
    ("Patients search name", "page:staff", "/patients/?q=Smi"),
    ("Patients search MRN", "page:staff", "/patients/?q={patient_mrn}"),
    ("Patient page", "page:staff", "/patients/{patient}/"),
    ("Study page", "page:staff", "/studies/{worklist_study}/"),
    ("Worklist page", "page:radiologist", "/worklist/"),
    ("Worklist page 10", "page:radiologist", "/worklist/?page=10"),
    ("Worklist search name", "page:radiologist", "/worklist/?q=Smi"),
    ("Worklist search MRN", "page:radiologist", "/worklist/?q={patient_mrn}"),
    ("Worklist reviewed, search MRN", "page:radiologist", "/worklist/?status=reviewed&q={patient_mrn}"),
    (
        "Worklist STAT, model, received",
        "page:radiologist",
        "/worklist/?priority=1&model={model_name}&received_from={week_ago_date}",
    ),
    ("Worklist sorted by patient", "page:radiologist", "/worklist/?sort=patient"),
    ("Worklist rows (polled)", "page:radiologist", "/worklist/rows/"),
    ("Review page", "page:radiologist", "/review/{worklist_study}/"),
    # --- DICOMweb QIDO-RS
    ("QIDO studies", "dicomweb:staff", "/dicomweb/studies"),
    ("QIDO studies, PatientID", "dicomweb:staff", "/dicomweb/studies?PatientID={dicom_mrn}"),
    ("QIDO studies, PatientName", "dicomweb:staff", "/dicomweb/studies?PatientName=Smi*"),
    ("QIDO studies, StudyDate", "dicomweb:staff", "/dicomweb/studies?StudyDate={month_ago_dicom}-"),
    ("QIDO studies, modality", "dicomweb:staff", "/dicomweb/studies?ModalitiesInStudy=MR"),
    ("QIDO studies, StudyInstanceUID", "dicomweb:staff", "/dicomweb/studies?StudyInstanceUID={dicom_study_uid}"),
    ("QIDO series", "dicomweb:staff", "/dicomweb/studies/{dicom_study_uid}/series"),
    ("QIDO instances", "dicomweb:staff", "/dicomweb/studies/{dicom_study_uid}/instances"),
)


def is_api_list(path: str) -> bool:
    """API collections whose query count must not depend on the page size."""
    return path.startswith("/api/v1/") and "/api/v1/models/" not in path


def with_page_size(path: str, size: int) -> str:
    return f"{path}{'&' if '?' in path else '?'}page_size={size}"


def fill(path: str, ids: dict) -> str:
    return path.format(**ids)
