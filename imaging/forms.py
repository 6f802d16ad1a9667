from django import forms
from django.utils import timezone

from imaging.models import Study


class StudyForm(forms.ModelForm):
    class Meta:
        model = Study
        fields = [
            "modality",
            "body_part",
            "procedure",
            "accession_number",
            "priority",
            "study_date",
            "description",
            "referring_physician",
        ]
        widgets = {
            "accession_number": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
            "study_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        }
        labels = {"body_part": "Body part", "study_date": "Study date"}
        error_messages = {"accession_number": {"unique": "Another study already has this accession number."}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("study_date", timezone.localdate())


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        single = super().clean
        items = [item for item in (data if isinstance(data, list | tuple) else [data]) if item]
        if not items:
            single(None, initial)  # raises "required" when the field is required
            return []
        return [single(item, initial) for item in items]


class ImageUploadForm(forms.Form):
    files = MultipleFileField(
        label="Images",
        help_text="PNG, JPEG or DICOM (.dcm); choose or drop several at once.",
        widget=MultipleFileInput(attrs={"accept": "image/png,image/jpeg,.dcm,application/dicom"}),
    )


class DicomImportForm(forms.Form):
    files = MultipleFileField(
        label="DICOM files",
        help_text=(
            "DICOM (.dcm) only; choose or drop several at once. Each file is filed under the patient "
            "and study named in its tags (PatientID, StudyInstanceUID or accession number)."
        ),
        widget=MultipleFileInput(attrs={"accept": ".dcm,.DCM,application/dicom"}),
    )
