"""axe-core's WCAG 2.1 A and AA rules find nothing on any main page, as each role sees it, in each state.

The states are built with the factories (no model runs): empty lists, validation errors, results
queued, done and failed, reviews saved and amended. Each check names the page and state, so a
failure reads as "axe-core: ... on the worklist, filtered to nothing".
"""

import datetime
import re

import pytest
from django.template.loader import render_to_string
from playwright.sync_api import expect

from imaging.models import Image
from inference.models import PredictionStatus, ReviewDecision
from inference.services import review_amend, review_create
from inference.study_status import study_refresh_status
from tests.browser.test_clinical_flows import _heatmap_name
from tests.factories import PatientFactory, StudyFactory, UserFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_check_fails_on_a_violation_and_names_it(page, assert_no_axe_violations):
    # Without this the checks below could pass because axe never ran.
    page.set_content('<html lang="en"><title>t</title><main><input id="nameless"></main></html>')
    with pytest.raises(AssertionError) as failure:
        assert_no_axe_violations(page, "a page with an unlabelled field")
    message = str(failure.value)
    assert "on a page with an unlabelled field" in message
    assert "- label (critical): Form elements must have labels" in message
    assert "#nameless" in message


def test_the_log_in_pages(page, assert_no_axe_violations):
    UserFactory(username="locked", role="staff")
    page.goto("/login/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert_no_axe_violations(page, "the log in page")

    page.get_by_label("Username").fill("locked")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".form-errors, .errorlist").first).to_be_visible()
    assert_no_axe_violations(page, "the log in page with an error")

    # Repeated failures lock the user name out; the page that says so is checked too.
    for _ in range(5):
        if page.get_by_role("heading", name="Too many failed log ins").count():
            break
        page.get_by_label("Password").fill("still not the password")
        page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Too many failed log ins")).to_be_visible()
    assert_no_axe_violations(page, "the locked-out page")

    # A form posted after its CSRF cookie is gone (logged out in another tab, say).
    page.goto("/login/")
    page.context.clear_cookies()
    page.get_by_label("Username").fill("someone")
    page.get_by_label("Password").fill("anything")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="This form has expired")).to_be_visible()
    assert_no_axe_violations(page, "the expired-form (CSRF) page")


def test_the_staff_pages(page, login, browser_staff, assert_no_axe_violations, tmp_path):
    login(page, "staff-browser")
    assert_no_axe_violations(page, "the staff dashboard, nothing today")

    page.goto("/patients/")
    assert_no_axe_violations(page, "the patient list, empty")

    page.goto("/patients/new/")
    assert_no_axe_violations(page, "the new patient form, blank")
    page.get_by_role("button", name="Create patient").click()
    expect(page.locator("[aria-invalid=true]").first).to_be_visible()
    assert_no_axe_violations(page, "the new patient form with validation errors")

    page.get_by_label("MRN").fill("MRN-AXE-1")
    page.get_by_label("Family name").fill("Okafor")
    page.get_by_label("Given name").fill("Ada")
    page.get_by_label("Date of birth").fill("1984-05-17")
    page.get_by_label("Sex").select_option("F")
    page.get_by_role("button", name="Create patient").click()
    expect(page.get_by_role("heading", name="OKAFOR, Ada")).to_be_visible()
    assert_no_axe_violations(page, "a patient with no studies")

    page.get_by_role("link", name="New study").click()
    assert_no_axe_violations(page, "the new study form, blank")
    page.get_by_role("button", name="Create study").click()
    expect(page.locator("[aria-invalid=true]").first).to_be_visible()
    assert_no_axe_violations(page, "the new study form with validation errors")

    page.get_by_label("Modality").select_option("DX")
    page.get_by_label("Body part").select_option("CHEST")
    page.get_by_label("Accession number").fill("ACC-AXE-1")
    page.get_by_role("button", name="Create study").click()
    expect(page.get_by_role("heading", name=re.compile("Study ACC-AXE-1"))).to_be_visible()
    assert_no_axe_violations(page, "a study with no images")
    study_id = page.url.rstrip("/").split("/")[-1]
    study_patient_id = (
        page.get_by_role("navigation", name="Breadcrumbs")
        .get_by_role("link")
        .last.get_attribute("href")
        .strip("/")
        .split("/")[-1]
    )

    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    page.locator("input[type=file]").set_input_files(str(corrupt))
    expect(page.locator(".upload-item--error")).to_have_count(1)
    assert_no_axe_violations(page, "a study page after a rejected upload")

    page.goto(f"/patients/{study_patient_id}/edit/")
    page.get_by_label("Family name").fill("")
    page.get_by_role("button", name=re.compile("Save")).click()
    expect(page.locator("[aria-invalid=true]").first).to_be_visible()
    assert_no_axe_violations(page, "the patient edit form with a validation error")

    PatientFactory.create_batch(30)
    page.goto("/patients/")
    expect(page.locator(".pagination")).to_be_visible()
    assert_no_axe_violations(page, "the patient list with rows and pages")
    page.get_by_role("link", name=re.compile("Next")).click()
    expect(page.locator(".pagination")).to_contain_text("Page 2 of 2")
    assert_no_axe_violations(page, "the patient list, second page")
    page.get_by_label("MRN or name").fill("nobody-is-called-this")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("table tbody tr")).to_have_count(0)
    assert_no_axe_violations(page, "a patient search with no match")

    response = page.goto(f"/review/{study_id}/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="You cannot open this page")).to_be_visible()
    assert_no_axe_violations(page, "the 403 page")

    page.goto("/dicom/import/")
    assert_no_axe_violations(page, "the DICOM import page")
    page.locator("input[type=file]").set_input_files(str(corrupt))
    expect(page.locator(".upload-item--error")).to_have_count(1)
    assert_no_axe_violations(page, "the DICOM import page after a rejected file")


def test_the_study_page_in_each_state_of_its_results(page, login, browser_staff, assert_no_axe_violations):
    model = make_aimodel()
    other = make_aimodel(name="cxr-effusion", display_name="Chest X-ray effusion")
    patient = PatientFactory(family_name="States", given_name="Stella")
    pending = StudyFactory(patient=patient, accession_number="ACC-PENDING")
    make_prediction(make_image(pending, name="queued.png"), model, status=PredictionStatus.QUEUED)
    make_prediction(make_image(pending, name="running.png"), model, status=PredictionStatus.RUNNING)
    done = StudyFactory(patient=patient, accession_number="ACC-DONE")
    image = make_image(done, name="done.png")
    make_prediction(image, model, label="pneumonia", confidence=0.91)
    make_prediction(image, other, status=PredictionStatus.FAILED)
    report = make_image(done, name="ai-report.dcm")
    Image.objects.filter(id=report.id).update(
        content_type="application/dicom",
        width=0,
        height=0,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.88.33",
        analysable=False,
        not_analysable_reason="Not an image (Comprehensive SR Storage).",
    )
    for study in (pending, done):
        study_refresh_status(study_id=study.id)

    login(page, "staff-browser")
    assert_no_axe_violations(page, "the staff dashboard with studies today")
    page.goto(f"/patients/{patient.id}/")
    assert_no_axe_violations(page, "a patient with studies")

    page.goto(f"/studies/{pending.id}/")
    expect(page.locator(".pending-note")).to_be_visible()
    assert_no_axe_violations(page, "a study with AI results pending")

    page.goto(f"/studies/{done.id}/")
    expect(page.locator("[data-prediction-status=succeeded]")).to_have_count(1)
    expect(page.locator("[data-prediction-status=failed]")).to_have_count(1)
    # A report has no thumbnail: its text spans the card instead of the thumbnail's narrow column.
    non_image = page.locator("[data-non-image]").bounding_box()
    card = page.locator(".image-card", has=page.locator("[data-non-image]")).bounding_box()
    assert non_image["width"] > card["width"] * 0.8
    assert_no_axe_violations(page, "a study with one AI result done and one failed, and a report")

    page.goto(f"/studies/{done.id}/report/")
    assert_no_axe_violations(page, "the printable study report, not yet reviewed")


def test_the_radiologist_pages(page, login, browser_radiologist, assert_no_axe_violations):
    login(page, "radiologist-browser")
    assert_no_axe_violations(page, "the radiologist dashboard, nothing to review")
    page.goto("/worklist/")
    expect(page.locator(".empty")).to_be_visible()
    assert_no_axe_violations(page, "the worklist, empty")

    model = make_aimodel()
    stat = StudyFactory(accession_number="ACC-STAT", priority=1, description="Fever")
    stat_image = make_image(stat, name="cxr.png")
    make_prediction(stat_image, model, label="pneumonia", confidence=0.93, heatmap=_heatmap_name((28, 28)))
    make_prediction(
        make_image(stat, name="cxr-2.png"), model, label="normal", confidence=0.8, heatmap=_heatmap_name((28, 28))
    )
    routine = StudyFactory(accession_number="ACC-ROUTINE", modality="CR")
    # Abnormal but under the flag's confidence: shown, more quietly than a flag, still legible.
    make_prediction(make_image(routine, name="later.png"), model, label="pneumonia", confidence=0.7)
    waiting = StudyFactory(accession_number="ACC-WAITING")
    make_prediction(make_image(waiting, name="waiting.png"), model, status=PredictionStatus.QUEUED)
    for study in (stat, routine, waiting):
        study_refresh_status(study_id=study.id)

    page.goto("/")
    assert_no_axe_violations(page, "the radiologist dashboard with studies to review")
    page.goto("/worklist/")
    expect(page.locator("table.worklist tbody tr")).to_have_count(2)
    expect(page.locator("tr[data-accession=ACC-ROUTINE]")).to_contain_text("Abnormal 70.0%")
    assert_no_axe_violations(page, "the worklist with rows, flagged and not")
    page.goto("/worklist/?modality=CR")
    expect(page.locator("table.worklist tbody tr")).to_have_count(1)
    assert_no_axe_violations(page, "the worklist, filtered")
    # At 640 px (a 1280 px screen at 200% zoom) the table reflows into cards.
    page.set_viewport_size({"width": 640, "height": 900})
    assert_no_axe_violations(page, "the worklist, filtered, at 640 px")
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto("/worklist/")
    page.get_by_label("Patient, MRN or accession").fill("ACC-STAT")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("table.worklist tbody tr")).to_have_count(1)
    assert_no_axe_violations(page, "the worklist, searched by accession")
    page.goto("/worklist/?q=nobody-is-called-this")
    expect(page.locator(".empty")).to_contain_text("No study matches")
    assert_no_axe_violations(page, "the worklist, a search with no match")
    page.goto("/worklist/?modality=MR")
    expect(page.locator(".empty")).to_be_visible()
    assert_no_axe_violations(page, "the worklist, filtered to nothing")

    page.goto(f"/review/{waiting.id}/")
    expect(page.get_by_role("heading", name="No AI second opinion to review")).to_be_visible()
    assert_no_axe_violations(page, "the review page while the AI is still reading")

    page.goto(f"/review/{stat.id}/")
    expect(page.locator("[data-viewer]")).to_have_attribute("data-ready", "true")
    assert_no_axe_violations(page, "the review page, a decision to make")
    page.get_by_role("button", name="Grad-CAM heatmap").click()
    expect(page.locator("[data-heatmap-canvas]")).to_be_visible()
    assert_no_axe_violations(page, "the review page with the heatmap shown")
    page.keyboard.press("?")
    expect(page.locator("[data-help]")).to_be_visible()
    assert_no_axe_violations(page, "the review page's keyboard shortcuts")
    page.keyboard.press("Escape")

    page.get_by_label("Override").check()
    page.get_by_role("button", name="Save and go to next").click()
    expect(page.locator("#id_final_label_error")).to_be_visible()
    assert_no_axe_violations(page, "the review page with a validation error")

    # Saved without a reload: the next result of the study, with the message of the save.
    read = "pneumonia" if page.locator("[data-ai-label]").inner_text() == "normal" else "normal"
    page.get_by_label("Final label").select_option(read)
    page.get_by_role("button", name="Save and go to next").click()
    expect(page.locator(".messages")).to_contain_text(f"final label {read}")
    expect(page.locator("[data-viewer]")).to_have_attribute("data-ready", "true")
    assert_no_axe_violations(page, "the review page after a save, the next result")

    empty = StudyFactory(accession_number="ACC-NO-IMAGES")
    broken = StudyFactory(accession_number="ACC-FAILED")
    make_prediction(make_image(broken, name="broken.png"), model, status=PredictionStatus.FAILED)
    for study in (empty, broken):
        study_refresh_status(study_id=study.id)
    page.goto(f"/review/{empty.id}/")
    expect(page.get_by_text("This study has no images yet.")).to_be_visible()
    assert_no_axe_violations(page, "the review page of a study without images")
    page.goto(f"/review/{broken.id}/")
    expect(page.locator(".prediction__error")).to_be_visible()
    assert_no_axe_violations(page, "the review page when the AI could not read the image")
    page.goto(f"/studies/{broken.id}/")
    assert_no_axe_violations(page, "the study page as a radiologist, the AI result failed")

    declined = StudyFactory(accession_number="ACC-DECLINED")
    reason = "Not run: this image does not look like the chest X-ray images this model was trained on."
    make_prediction(make_image(declined, name="photo.png"), model, status=PredictionStatus.FAILED, error=reason)
    page.goto(f"/studies/{declined.id}/")
    expect(page.locator(".badge--not-run")).to_have_text("Not run")
    assert_no_axe_violations(page, "the study page, an image the model declined")

    # Agree with all: the dialog and the page without JavaScript, each listing what is left out.
    mixed = StudyFactory(accession_number="ACC-MIXED")
    make_prediction(make_image(mixed, name="read.png"), model, label="pneumonia", confidence=0.9)
    make_prediction(make_image(mixed, name="unreadable.png"), model, status=PredictionStatus.FAILED)
    make_prediction(make_image(mixed, name="queued.png"), model, status=PredictionStatus.QUEUED)
    study_refresh_status(study_id=mixed.id)
    page.goto(f"/review/{mixed.id}/")
    expect(page.locator("[data-viewer]")).to_have_attribute("data-ready", "true")
    page.keyboard.press("Shift+A")
    expect(page.locator("[data-agree-all-dialog]")).to_be_visible()
    expect(page.locator("[data-agree-all-dialog] .agree-all__left li")).to_have_count(2)
    assert_no_axe_violations(page, "the agree-with-all dialog, two opinions left out")
    page.goto(f"/review/{mixed.id}/agree-all/")
    expect(page.locator(".agree-all__left li")).to_have_count(2)
    assert_no_axe_violations(page, "the agree-with-all page")
    page.goto(f"/review/{waiting.id}/agree-all/")
    expect(page.get_by_text("No AI second opinion of this study awaits review.")).to_be_visible()
    assert_no_axe_violations(page, "the agree-with-all page, nothing to agree with")


def test_the_review_page_after_a_decision_and_an_amendment(page, login, browser_radiologist, assert_no_axe_violations):
    model = make_aimodel()
    study = StudyFactory(accession_number="ACC-AMENDED")
    prediction = make_prediction(make_image(study, name="cxr.png"), model, label="pneumonia", confidence=0.88)
    review = review_create(
        prediction=prediction, reviewer=browser_radiologist, decision=ReviewDecision.AGREE, final_label="pneumonia"
    )
    review_amend(
        review=review,
        user=browser_radiologist,
        decision=ReviewDecision.OVERRIDE,
        final_label="normal",
        comment="Overlapping soft tissue.",
        reason="Compared with the lateral view.",
    )
    study_refresh_status(study_id=study.id)

    login(page, "radiologist-browser")
    page.goto(f"/review/{study.id}/")
    expect(page.locator(".review-note")).to_be_visible()
    assert_no_axe_violations(page, "the review page after a decision and an amendment")

    page.get_by_text("Amend your review").click()
    page.get_by_label("Reason for the amendment").fill("")
    page.get_by_role("button", name="Save the amendment").click()
    expect(page.locator("[data-amend-form] [aria-invalid=true]").first).to_be_visible()
    assert_no_axe_violations(page, "the amend form with a validation error")

    page.goto(f"/studies/{study.id}/report/")
    assert_no_axe_violations(page, "the printable study report, reviewed and amended")
    page.emulate_media(media="print")
    expect(page.locator(".site-header")).to_be_hidden()
    assert_no_axe_violations(page, "the study report as printed")
    page.emulate_media(media="screen")


def test_the_review_page_with_the_priors_panel_and_the_comparison(
    page, login, browser_radiologist, assert_no_axe_violations
):
    model = make_aimodel()
    patient = PatientFactory(family_name="Prior", given_name="Pat")
    current = StudyFactory(patient=patient, accession_number="ACC-TODAY", study_date=datetime.date(2026, 11, 30))
    make_prediction(make_image(current, name="today.png"), model)
    prior = StudyFactory(patient=patient, accession_number="ACC-OCTOBER", study_date=datetime.date(2026, 10, 2))
    reviewed = make_prediction(make_image(prior, name="october.png"), model, label="normal", confidence=0.77)
    review_create(prediction=reviewed, reviewer=browser_radiologist, decision=ReviewDecision.AGREE)
    make_prediction(make_image(prior, name="october-2.png"), model, status=PredictionStatus.FAILED)
    first_visit = StudyFactory(accession_number="ACC-FIRST")
    make_prediction(make_image(first_visit, name="first.png"), model)
    for study in (current, prior, first_visit):
        study_refresh_status(study_id=study.id)

    login(page, "radiologist-browser")
    page.goto(f"/review/{current.id}/")
    expect(page.locator("[data-viewer]")).to_have_attribute("data-ready", "true")
    page.keyboard.press("p")
    panel = page.locator("[data-priors]")
    expect(panel).to_contain_text("Agree — final label normal")
    assert_no_axe_violations(page, "the review page with the priors panel open")

    panel.locator("[data-compare-open]").first.click()
    dialog = page.locator("[data-compare]")
    for side in ("current", "prior"):
        expect(dialog.locator(f'[data-compare-pane="{side}"]')).to_have_attribute("data-ready", "true")
    assert_no_axe_violations(page, "the comparison of a current and a prior image")

    page.goto(f"/review/{first_visit.id}/")
    expect(page.locator("[data-viewer]")).to_have_attribute("data-ready", "true")
    page.keyboard.press("p")
    expect(panel).to_contain_text("No earlier studies")
    assert_no_axe_violations(page, "the priors panel of a patient without earlier studies")


def test_the_admin_dashboard_and_the_error_pages(page, login, assert_no_axe_violations):
    UserFactory(username="admin-browser", role="admin", is_superuser=True)  # as user_create makes one
    model = make_aimodel()
    study = StudyFactory()
    make_prediction(make_image(study, name="a.png"), model, status=PredictionStatus.QUEUED)
    make_prediction(make_image(study, name="b.png"), model, status=PredictionStatus.FAILED)
    reviewed = make_prediction(make_image(study, name="c.png"), model)
    radiologist = UserFactory(role="radiologist")
    review_create(prediction=reviewed, reviewer=radiologist, decision=ReviewDecision.AGREE, final_label="pneumonia")

    login(page, "admin-browser")
    assert_no_axe_violations(page, "the admin dashboard")

    # The one admin page of our own: a new API token's key, shown once.
    page.goto("/admin/tokens/apitoken/add/")
    page.get_by_label("Name").fill("PACS bridge")
    page.get_by_label("User").select_option(label=str(radiologist))
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("[data-token-key]")).to_be_visible()
    assert_no_axe_violations(page, "the new API token page")

    response = page.goto("/no-such-page/")
    assert response.status == 404
    assert_no_axe_violations(page, "the 404 page")

    # The 500 page cannot be reached on purpose; it is shown as the server would render it.
    page.set_content(render_to_string("500.html"))
    expect(page.get_by_role("heading", name="Something went wrong")).to_be_visible()
    assert_no_axe_violations(page, "the 500 page")
