"""The printable study report: everything a reader needs on paper, nothing of the page around it."""

import io
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from PIL import Image as PILImage

from audit.models import AuditEvent
from inference.services import review_create
from inference.study_status import study_refresh_status
from tests.factories import PatientFactory, StudyFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction
from tests.web.test_review import _heatmap_png

pytestmark = pytest.mark.django_db

CSS = (Path(settings.BASE_DIR) / "static" / "css" / "medportal.css").read_text()


def _reviewed_study(radiologist):
    model = make_aimodel()
    study = StudyFactory(
        patient=PatientFactory(family_name="Okafor", given_name="Ada", mrn="MRN-0042"), accession_number="ACC-PRINT"
    )
    second = make_prediction(make_image(study, name="img-10.png"), model, label="normal", confidence=0.66)
    first = make_prediction(
        make_image(study, name="img-2.png"), model, label="pneumonia", confidence=0.91, heatmap=_heatmap_png()
    )
    review_create(prediction=first, reviewer=radiologist, decision="override", final_label="normal", comment="Overlap.")
    study_refresh_status(study_id=study.id)
    return study, first, second


def test_report_has_patient_study_opinions_reviews_and_both_images(radiologist_client, radiologist_user):
    study, first, second = _reviewed_study(radiologist_user)
    response = radiologist_client.get(reverse("pages:study-report", args=[study.id]))
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("OKAFOR, Ada", "MRN-0042", "ACC-PRINT", "Digital radiography", "AI second opinion — not a diagnosis"):
        assert text in html
    assert html.count("cxr-pneumonia v1.2.0") >= 2
    assert "confidence 91.0%" in html and "confidence 66.0%" in html
    assert "<strong>Override</strong>" in html and "final label <strong>normal</strong>" in html and "Overlap." in html
    assert "Not reviewed by a radiologist yet." in html
    assert html.index("img-2.png") < html.index("img-10.png")  # reading order
    assert reverse("pages:prediction-overlay", args=[first.id]) in html
    assert reverse("pages:prediction-overlay", args=[second.id]) not in html  # no heatmap, no overlay
    assert AuditEvent.objects.filter(detail="study report").count() == 1


def test_staff_can_print_the_report_too(staff_client, radiologist_user):
    study, _, _ = _reviewed_study(radiologist_user)
    assert staff_client.get(reverse("pages:study-report", args=[study.id])).status_code == 200
    detail = staff_client.get(reverse("pages:study-detail", args=[study.id])).content.decode()
    assert reverse("pages:study-report", args=[study.id]) in detail


def test_overlay_is_the_image_with_a_viridis_heatmap(radiologist_client, radiologist_user):
    study, first, second = _reviewed_study(radiologist_user)
    response = radiologist_client.get(reverse("pages:prediction-overlay", args=[first.id]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    picture = PILImage.open(io.BytesIO(response.content))
    assert picture.mode == "RGB" and picture.size == (16, 12)
    hot = picture.getpixel((8, 11))  # the gradient heatmap is hottest at the bottom
    cold = picture.getpixel((8, 0))
    assert hot[1] > hot[2] and hot[0] > cold[0]  # towards viridis' yellow, away from its violet
    assert radiologist_client.get(reverse("pages:prediction-overlay", args=[second.id])).status_code == 404


def test_print_stylesheet_leaves_out_navigation_upload_and_footer():
    block = CSS[CSS.index("@media print") :]
    hidden = re.search(r"([^{}]+)\{\s*display: none !important;\s*\}", block).group(1)
    for selector in (".site-header", ".site-footer", ".upload", ".page-head__actions", "[data-review-form]"):
        assert selector in hidden
