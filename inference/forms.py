from django import forms

from imaging.models import Modality, StudyStatus
from inference.models import ReviewDecision
from inference.services import SAME_LABEL_OVERRIDE

WORKLIST_STATUSES = {
    # The worklist's own view of a study's state; the default is what radiologists act on.
    "ai_done": ("AI done, awaiting review", (StudyStatus.AI_DONE,)),
    "ai_pending": ("AI still running", (StudyStatus.AI_PENDING, StudyStatus.RECEIVED)),
    "reviewed": ("Reviewed", (StudyStatus.REVIEWED,)),
}


class WorklistFilterForm(forms.Form):
    modality = forms.ChoiceField(choices=[("", "All modalities"), *Modality.choices], required=False)
    status = forms.ChoiceField(
        choices=[(key, label) for key, (label, _) in WORKLIST_STATUSES.items()], required=False, initial="ai_done"
    )

    def selected_statuses(self) -> tuple[str, ...]:
        key = (self.cleaned_data.get("status") if self.is_valid() else "") or "ai_done"
        return WORKLIST_STATUSES[key][1]

    def selected_modality(self) -> str:
        return (self.cleaned_data.get("modality") if self.is_valid() else "") or ""


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(
        choices=ReviewDecision.choices,
        widget=forms.RadioSelect,
        label="Your decision",
        error_messages={"required": "Choose Agree or Override."},
    )
    final_label = forms.ChoiceField(label="Final label", required=False)
    comment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="Why you agree or override; kept with the review.",
    )

    def __init__(self, *args, labels: list[str], ai_label: str, **kwargs):
        super().__init__(*args, **kwargs)
        # The empty choice is what an override starts from: the AI's label is never preselected for it.
        self.fields["final_label"].choices = [("", "Choose the label you read"), *((label, label) for label in labels)]
        self.fields["final_label"].initial = ai_label
        self.ai_label = ai_label

    def clean(self):
        data = super().clean()
        if data.get("decision") == ReviewDecision.AGREE:
            data["final_label"] = self.ai_label
        elif data.get("decision") == ReviewDecision.OVERRIDE:
            if not data.get("final_label"):
                self.add_error("final_label", "Choose the label you read: an override needs one.")
            elif data["final_label"] == self.ai_label:
                self.add_error("final_label", SAME_LABEL_OVERRIDE)
        return data


class AmendReviewForm(ReviewForm):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Reason for the amendment",
        error_messages={"required": "Give a reason for the amendment."},
        help_text="Kept with the earlier decision in the review's history and the audit trail.",
    )

    def __init__(self, *args, review, **kwargs):
        prediction = review.prediction
        super().__init__(
            *args,
            labels=list(prediction.model.labels),
            ai_label=prediction.label,
            initial={"decision": review.decision, "final_label": review.final_label, "comment": review.comment},
            prefix="amend",
            **kwargs,
        )
