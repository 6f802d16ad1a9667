from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from accounts.policy import Act, Resource, allowed_roles
from audit.access import audit_access, audited
from audit.models import AuditAction, AuditInterface
from imaging.selectors import patient_studies
from patients.forms import PatientForm, PatientSearchForm
from patients.models import Patient
from patients.selectors import patient_list as patient_list_query
from patients.selectors import patients_with_study_summary
from patients.services import patient_create, patient_update
from web.access import role_required

PAGE_SIZE = 25


@audited(AuditInterface.UI)
@role_required(allowed_roles(Resource.PATIENT, Act.SEARCH))
def patient_list(request: HttpRequest) -> HttpResponse:
    search = PatientSearchForm(request.GET)
    term = search.cleaned_data["q"] if search.is_valid() else ""
    page = Paginator(patient_list_query(search=term), PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = patients_with_study_summary(patients=list(page.object_list))
    audit_access(request, rows=[(patient, None) for patient in page.object_list], detail="list")
    return render(request, "patients/patient_list.html", {"search": search, "term": term, "page": page})


@audited(AuditInterface.UI)
@role_required(allowed_roles(Resource.PATIENT, Act.WRITE))
def patient_create_view(request: HttpRequest) -> HttpResponse:
    form = PatientForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            patient = patient_create(**form.cleaned_data, created_by=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            audit_access(request, obj=patient, action=AuditAction.CREATE)
            messages.success(request, f"Patient {patient} created.")
            return redirect("pages:patient-detail", patient_id=patient.id)
    return render(request, "patients/patient_form.html", {"form": form, "patient": None})


@audited(AuditInterface.UI)
@role_required(allowed_roles(Resource.PATIENT, Act.WRITE))
def patient_edit(request: HttpRequest, patient_id) -> HttpResponse:
    patient = get_object_or_404(Patient, id=patient_id)
    # The form validates a copy, so a refused edit never leaves the page showing half-applied values.
    form = PatientForm(request.POST or None, instance=Patient.objects.get(id=patient.id))
    if request.method == "POST" and form.is_valid():
        try:
            patient = patient_update(patient=patient, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            audit_access(request, obj=patient, action=AuditAction.UPDATE)
            messages.success(request, f"Patient {patient} saved.")
            return redirect("pages:patient-detail", patient_id=patient.id)
    audit_access(request, obj=patient, detail="edit form")
    return render(request, "patients/patient_form.html", {"form": form, "patient": patient})


@audited(AuditInterface.UI)
@role_required(allowed_roles(Resource.PATIENT, Act.READ))
def patient_detail(request: HttpRequest, patient_id) -> HttpResponse:
    patient = get_object_or_404(Patient, id=patient_id)
    studies = patient_studies(patient=patient)
    audit_access(request, obj=patient)
    return render(request, "patients/patient_detail.html", {"patient": patient, "studies": studies})
