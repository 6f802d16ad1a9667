from django import forms

from imaging.models import Modality, Priority, StudyStatus
from inference.models import ReviewDecision
from inference.selectors import WorklistQuery, worklist_model_names
from inference.services import SAME_LABEL_OVERRIDE
from web.widgets import Select

WORKLIST_STATUSES = {
    # The worklist's own view of a study's state; the default is what radiologists act on.
    "ai_done": ("AI done, awaiting review", (StudyStatus.AI_DONE,)),
    "ai_pending": ("AI still running", (StudyStatus.AI_PENDING, StudyStatus.RECEIVED)),
    "reviewed": ("Reviewed", (StudyStatus.REVIEWED,)),
}

# Each sortable column with the words for its two directions (ascending, descending).
WORKLIST_SORT_LABELS = {
    "priority": ("Priority, STAT first", "Priority, routine first"),
    "waiting": ("Waiting, shortest first", "Waiting, longest first"),
    "ai": ("AI flag, lowest confidence first", "AI flag, highest confidence first"),
    "patient": ("Patient, A to Z", "Patient, Z to A"),
    "accession": ("Accession, ascending", "Accession, descending"),
    "exam": ("Exam, A to Z", "Exam, Z to A"),
    "images": ("Images, fewest first", "Images, most first"),
    "status": ("Status, A to Z", "Status, Z to A"),
}


class WorklistFilterForm(forms.Form):
    """The worklist's search, filters and sort, read from the query string.

    Each part is used only when it is valid, so a stale or hand-edited link narrows the list by the
    parts that still make sense; the invalid part is reported next to its control.
    """

    q = forms.CharField(
        label="Patient, MRN or accession",
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off", "spellcheck": "false"}),
        error_messages={"max_length": "Search for at most %(limit_value)d characters."},
    )
    modality = forms.ChoiceField(choices=[("", "All modalities"), *Modality.choices], required=False, widget=Select)
    status = forms.ChoiceField(
        choices=[(key, label) for key, (label, _) in WORKLIST_STATUSES.items()],
        required=False,
        initial="ai_done",
        widget=Select,
    )
    priority = forms.TypedChoiceField(
        choices=[("", "All priorities"), *((str(value), label) for value, label in Priority.choices)],
        coerce=int,
        empty_value=None,
        required=False,
        widget=Select,
    )
    model = forms.ChoiceField(label="AI model", required=False, widget=Select)
    received_from = forms.DateField(
        label="Received from",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": "Enter the date as YYYY-MM-DD."},
    )
    received_to = forms.DateField(
        label="Received to",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": "Enter the date as YYYY-MM-DD."},
    )
    sort = forms.ChoiceField(
        label="Sort by",
        required=False,
        widget=Select,
        choices=[
            ("", "Triage order"),
            *(
                choice
                for key, (ascending, descending) in WORKLIST_SORT_LABELS.items()
                for choice in ((key, ascending), (f"-{key}", descending))
            ),
        ],
        error_messages={"invalid_choice": "This list cannot be sorted that way; it is shown in triage order."},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "All models"), *worklist_model_names()]

    def clean(self):
        data = super().clean()
        start, end = data.get("received_from"), data.get("received_to")
        if start and end and start > end:
            self.add_error("received_to", "The “to” date is before the “from” date.")
        return data

    def worklist_query(self) -> WorklistQuery:
        """The valid parts as a selector's query; the triage worklist of finished AI results by default."""
        data = {}
        if self.is_bound:
            self.is_valid()  # cleaned_data then holds the valid fields only
            data = self.cleaned_data
        status = data.get("status") or "ai_done"
        return WorklistQuery(
            statuses=WORKLIST_STATUSES[status][1],
            search=data.get("q") or "",
            modality=data.get("modality") or "",
            priority=data.get("priority"),
            model_name=data.get("model") or "",
            received_from=data.get("received_from"),
            received_to=data.get("received_to"),
            sort=data.get("sort") or "",
        )


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
