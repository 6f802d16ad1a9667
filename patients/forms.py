from django import forms

from patients.models import Patient


class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = ["mrn", "family_name", "given_name", "birth_date", "sex"]
        widgets = {
            "mrn": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
            "birth_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        }
        labels = {"family_name": "Family name", "given_name": "Given name", "birth_date": "Date of birth"}

    def clean_mrn(self) -> str:
        return self.cleaned_data["mrn"].strip()


class PatientSearchForm(forms.Form):
    q = forms.CharField(label="MRN or name", required=False, max_length=120)
