from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.roles import Role
from audit.access import audit_access, audited
from audit.models import AuditInterface
from imaging.models import Priority, StudyStatus
from inference.selectors import (
    DASHBOARD_COUNTS_SECONDS,
    agreement_per_model,
    prediction_queue,
    studies_today,
    worklist_summary,
)
from web.charts import hbar_chart, stacked_bar

STATUS_CSS = {
    StudyStatus.RECEIVED: "received",
    StudyStatus.AI_PENDING: "ai_pending",
    StudyStatus.AI_DONE: "ai_done",
    StudyStatus.REVIEWED: "reviewed",
}


@audited(AuditInterface.UI)
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Each role's dashboard; a user with several roles sees each of their panels."""
    user = request.user
    context: dict = {"today": timezone.localdate(), "counts_max_age": DASHBOARD_COUNTS_SECONDS}
    shown = []  # the studies the page names, audited together at the end (one INSERT)
    if user.has_role(Role.STAFF):
        studies = list(studies_today(day=context["today"]))
        shown.extend((s, s.patient_id) for s in studies)
        counts = dict.fromkeys(StudyStatus, 0)
        for study in studies:
            counts[StudyStatus(study.status)] += 1
        context["studies_today"] = studies
        context["today_segments"] = stacked_bar(
            [(status.label, counts[status], STATUS_CSS[status]) for status in StudyStatus]
        )
    if user.has_role(Role.RADIOLOGIST):
        summary = worklist_summary()
        oldest = summary["oldest"]
        if oldest is not None and all(study.id != oldest.id for study, _ in shown):
            shown.append((oldest, oldest.patient_id))
        context["worklist"] = summary
        context["worklist_chart"] = hbar_chart(
            [(priority.label, summary["by_priority"].get(priority.value, 0)) for priority in Priority],
            title="Studies awaiting review by priority",
            maximum=max(summary["by_priority"].values(), default=0) or 1,
            fmt=lambda v: f"{int(v)}",
            label_width=90,
            plot_width=260,
        )
    if user.has_role(Role.ADMIN):
        queue = prediction_queue()
        agreement = agreement_per_model()
        context["queue"] = queue
        context["queue_chart"] = hbar_chart(
            [(model, counts["queued"] + counts["running"]) for model, counts in sorted(queue["per_model"].items())],
            title="AI results queued or running, per model version",
            maximum=max((c["queued"] + c["running"] for c in queue["per_model"].values()), default=0) or 1,
            fmt=lambda v: f"{int(v)}",
            label_width=170,
        )
        context["agreement"] = agreement
        context["agreement_chart"] = hbar_chart(
            [(row["model"], row["rate"]) for row in agreement],
            title="Radiologist agreement rate per model version",
            notes={row["model"]: f"{row['agreed']}/{row['total']} reviews" for row in agreement},
            label_width=170,
        )
    audit_access(request, rows=shown, detail="dashboard")
    return render(request, "web/home.html", context)
