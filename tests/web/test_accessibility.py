"""WCAG 2.1 AA checks that automated rule engines miss: contrast of non-text UI, errors tied to their
fields, and signals that do not rely on colour alone."""

import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from imaging.models import Study
from inference.ml import preprocessing as pp
from inference.models import Review
from inference.study_status import study_refresh_status
from tests.factories import PatientFactory, StudyFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

CSS = (Path(settings.BASE_DIR) / "static" / "css" / "medportal.css").read_text()

# Where the focus ring and the controls are drawn: page, panels, header, viewer toolbar and stage.
BACKGROUNDS = {"white": "#ffffff", "page": "--bg", "panel": "--surface", "header": "#12263f", "toolbar": "#1b2430"}


def _variable(name: str) -> str:
    return re.search(rf"{name}:\s*(#[0-9a-fA-F]{{6}})\s*;", CSS).group(1)


def _colour(value: str) -> str:
    return _variable(value) if value.startswith("--") else value


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_helper_matches_known_ratios():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#ffbf47", "#ffffff") == pytest.approx(1.64, abs=0.01)  # the old focus ring


@pytest.mark.parametrize("background", sorted(BACKGROUNDS))
def test_focus_ring_has_3_to_1_against_every_background_it_sits_on(background):
    assert re.search(r":focus-visible\s*\{[^}]*outline:\s*3px solid var\(--focus\)", CSS)
    assert contrast(_variable("--focus"), _colour(BACKGROUNDS[background])) >= 3.0


@pytest.mark.parametrize("background", ["white", "page", "panel"])
def test_input_borders_have_3_to_1(background):
    assert re.search(r"input, select, textarea \{[^}]*border: 1px solid var\(--control-border\)", CSS)
    assert contrast(_variable("--control-border"), _colour(BACKGROUNDS[background])) >= 3.0


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.described: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if attrs.get("aria-describedby"):
            self.described.append((tag, attrs))


def _described_by(html: str) -> tuple[set[str], list[tuple[str, dict]]]:
    parser = _Ids()
    parser.feed(html)
    return parser.ids, parser.described


@pytest.mark.django_db
def test_patient_form_errors_are_tied_to_their_fields(staff_client):
    PatientFactory(mrn="MRN-1")
    response = staff_client.post(
        reverse("pages:patient-create"), {"mrn": "MRN-1", "family_name": "", "birth_date": "not a date", "sex": "F"}
    )
    ids, described = _described_by(response.content.decode())
    by_name = {attrs.get("name"): attrs for _, attrs in described}
    for name in ("mrn", "family_name", "birth_date"):
        assert f"id_{name}_error" in by_name[name]["aria-describedby"].split()
        assert by_name[name].get("aria-invalid") == "true"
    for _, attrs in described:
        missing = set(attrs["aria-describedby"].split()) - ids
        assert not missing, f"aria-describedby names ids that do not exist: {missing}"
    assert 'id="id_family_name_error"' in response.content.decode()


@pytest.mark.parametrize("page", ["study", "dicom-import"])
def test_the_upload_controls_are_described_by_their_hint(staff_client, study, page):
    url = reverse("pages:study-detail", args=[study.id]) if page == "study" else reverse("pages:dicom-import")
    ids, described = _described_by(staff_client.get(url).content.decode())
    files = next(attrs for tag, attrs in described if attrs.get("name") == "files")
    assert files["aria-describedby"] == "id_files_helptext"
    for _, attrs in described:
        missing = set(attrs["aria-describedby"].split()) - ids
        assert not missing, f"aria-describedby names ids that do not exist: {missing}"


@pytest.mark.django_db
def test_review_errors_are_specific_and_next_to_their_control(radiologist_client):
    study = StudyFactory()
    prediction = make_prediction(make_image(study), make_aimodel(), label="pneumonia")
    study_refresh_status(study_id=study.id)

    response = radiologist_client.post(reverse("pages:review", args=[study.id]), {"prediction": prediction.id})
    html = response.content.decode()
    assert "Choose Agree or Override." in html
    assert "This field is required." not in html
    ids, described = _described_by(html)
    fieldset = next(attrs for tag, attrs in described if tag == "fieldset")
    assert fieldset["aria-describedby"] == "id_decision_error"
    assert "id_decision_error" in ids
    for _, attrs in described:
        assert set(attrs["aria-describedby"].split()) <= ids
    assert not Review.objects.exists()


@pytest.mark.django_db
def test_overdue_waits_are_said_in_words_not_only_in_red(radiologist_client):
    model = make_aimodel()
    late = StudyFactory(accession_number="ACC-LATE")
    Study.objects.filter(id=late.id).update(created_at=timezone.now() - timedelta(hours=3))
    fresh = StudyFactory(accession_number="ACC-FRESH")
    for study in (late, fresh):
        make_prediction(make_image(study, name=study.accession_number), model)
        study_refresh_status(study_id=study.id)

    html = radiologist_client.get(reverse("pages:worklist")).content.decode()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr data-study-id=\"([^\"]+)\"[^>]*>.*?</tr>", html, re.S)}
    assert "Overdue" in rows[str(late.id)] and "waiting--long" in rows[str(late.id)]
    assert "Overdue" not in rows[str(fresh.id)]

    dashboard = radiologist_client.get(reverse("pages:home")).content.decode()
    alert = re.search(r'<div class="stat stat--alert">.*?</div>', dashboard, re.S).group(0)
    assert "Overdue" in alert


def test_heatmap_overlay_uses_viridis_not_a_rainbow():
    heat = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    over = pp.overlay_heatmap(np.zeros((4, 4), np.uint8), heat, alpha=1.0)
    low, high = over[0, 0].astype(int), over[3, 3].astype(int)
    assert tuple(low) == (68, 1, 84)  # viridis' dark violet
    assert high[0] > 240 and high[1] > 220 and high[2] < 60  # viridis' yellow, not jet's dark red
