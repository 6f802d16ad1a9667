"""The review page's priors: the patient's earlier studies with their AI results and reviews."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.policy import Act, Resource, allowed_roles
from audit.access import audit_access, audited
from audit.models import AuditInterface
from imaging.models import Study
from imaging.selectors import study_for_page
from inference.selectors import study_priors
from web.access import role_required


@audited(AuditInterface.UI)
@role_required(allowed_roles(Resource.PATIENT, Act.READ))
def review_priors(request: HttpRequest, study_id) -> HttpResponse:
    """The priors panel's content, fetched when the reader opens it.

    Listing a patient's studies is reading their record, so the patient read rule applies (the
    patient page shows the same studies); the patient and every study shown are audited, in one INSERT.
    """
    try:
        study = study_for_page(study_id=study_id)
    except Study.DoesNotExist as exc:
        raise Http404("No such study.") from exc
    priors = study_priors(study=study)
    shown = [(study.patient, None), *((prior, prior.patient_id) for prior in priors.studies)]
    audit_access(request, rows=shown, detail="priors")
    context = {"study": study, "patient": study.patient, "priors": priors}
    return render(request, "inference/_priors_list.html", context)
