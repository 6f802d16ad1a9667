"""Agree with all AI second opinions of a study with one confirmation, and amend a review, in a real
browser: no page reload, the focus where the next action is, no axe-core violation."""

import re

import pytest
from playwright.sync_api import expect

from inference.models import PredictionStatus, Review
from inference.services import review_create
from inference.study_status import study_refresh_status
from tests.factories import PatientFactory, StudyFactory
from tests.support.workers import wait_for
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REFUSED = "Not run: the image is 16×12 pixels, smaller than the 28×28 this model reads."


def _mark_page(page) -> None:
    # A reload would drop this flag: finding it later proves the page was not reloaded.
    page.evaluate("window.__sameDocument = true")


def _same_document(page) -> bool:
    return page.evaluate("window.__sameDocument === true")


def test_agree_with_all_asks_once_then_opens_the_next_study_of_the_filtered_worklist(
    page, login, screenshot, assert_no_axe_violations, browser_radiologist
):
    model = make_aimodel()
    other_model = make_aimodel(name="cxr-effusion", display_name="Chest X-ray effusion", labels=["normal", "effusion"])
    study = StudyFactory(
        patient=PatientFactory(family_name="Many"), accession_number="ACC-MULTI", modality="DX", priority=2
    )
    images = [make_image(study, name=f"img-{n}.png") for n in (1, 2, 3)]
    agreed = [make_prediction(image, model, label="pneumonia") for image in images]
    agreed.append(make_prediction(images[0], other_model, label="effusion"))
    refused = make_prediction(images[2], other_model, status=PredictionStatus.FAILED, error=REFUSED)
    stat_cr = StudyFactory(accession_number="ACC-CR-STAT", modality="CR", priority=1)  # filtered out
    following = StudyFactory(accession_number="ACC-DX-NEXT", modality="DX", priority=3)
    for other in (stat_cr, following):
        make_prediction(make_image(other, name="other.png"), model, label="normal")
    for s in (study, stat_cr, following):
        study_refresh_status(study_id=s.id)

    login(page, "radiologist-browser")
    page.goto("/worklist/?modality=DX")
    page.locator("table.worklist tbody tr").first.get_by_role("link", name="Review").click()
    expect(page.locator("[data-viewer]")).to_have_attribute("data-ready", "true")
    expect(page.get_by_role("heading", name=re.compile("Review ACC-MULTI"))).to_be_visible()
    _mark_page(page)

    # The shortcut is listed in the help overlay.
    page.keyboard.press("?")
    expect(page.locator("[data-help]")).to_contain_text("Agree with all AI second opinions of this study")
    page.keyboard.press("Escape")

    # Shift+A asks once, in a modal dialog whose focus is on the confirmation; Esc cancels, saves
    # nothing and gives the focus back.
    focused = page.evaluate("document.activeElement.name")
    page.keyboard.press("Shift+A")
    dialog = page.get_by_role("dialog", name="Agree with all AI second opinions of ACC-MULTI?")
    expect(dialog).to_be_visible()
    confirm = dialog.get_by_role("button", name="Agree with all 4")
    expect(confirm).to_be_focused()
    expect(dialog.locator(".agree-all__list li")).to_have_count(4)
    expect(dialog).to_contain_text(f"img-3.png — Chest X-ray effusion: {REFUSED}")
    assert_no_axe_violations(page, "review page, agree-with-all confirmation open")
    screenshot(page, "review-agree-all-confirm")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.evaluate("document.activeElement.name") == focused
    assert not Review.objects.exists()

    # With the mouse: the button, then the one confirmation.
    page.get_by_role("link", name=re.compile("Agree with all 4 AI second opinions")).click()
    expect(confirm).to_be_focused()
    confirm.click()

    expect(page.get_by_role("heading", name=re.compile("Review ACC-DX-NEXT"))).to_be_visible()
    assert "modality=DX" in page.url
    assert _same_document(page), "the page reloaded"
    expect(page.locator(".messages")).to_contain_text("Agreed with 4 AI second opinions of ACC-MULTI.")
    expect(page.locator(".messages")).to_contain_text(f"Not reviewed: img-3.png (Chest X-ray effusion): {REFUSED}")
    assert page.evaluate("document.activeElement.name") == "decision"
    reviews = wait_for(lambda: list(Review.objects.filter(prediction__image__study=study)) or None)
    assert sorted((r.prediction_id, r.decision, r.final_label) for r in reviews) == sorted(
        (p.id, "agree", p.label) for p in agreed
    )
    assert not Review.objects.filter(prediction=refused).exists()


def test_an_amendment_is_saved_without_a_reload_and_the_earlier_decision_stays_in_the_history(
    page, login, screenshot, assert_no_axe_violations, browser_radiologist
):
    model = make_aimodel()
    study = StudyFactory(accession_number="ACC-AMEND", modality="DX")
    prediction = make_prediction(make_image(study, name="cxr.png"), model, label="pneumonia", confidence=0.9)
    review_create(prediction=prediction, reviewer=browser_radiologist, decision="agree", comment="Consolidation.")
    study_refresh_status(study_id=study.id)

    login(page, "radiologist-browser")
    page.goto(f"/review/{study.id}/?prediction={prediction.id}")
    expect(page.locator("[data-viewer]")).to_have_attribute("data-ready", "true")
    _mark_page(page)
    summary = page.locator("[data-review-summary]")
    expect(summary).to_contain_text("Agree — final label pneumonia")

    page.get_by_text("Amend your review").click()
    amend = page.locator("[data-amend-form]")
    amend.get_by_label("Override").check()
    label = amend.get_by_label("Final label")
    expect(label).to_have_value("")  # an override never starts from the AI's label
    label.select_option("normal")
    amend.get_by_role("button", name="Save the amendment").click()

    # No reason: the error is next to the reason, tied to it, and the reason has the focus.
    reason = page.locator("[data-amend-form]").get_by_label("Reason for the amendment")
    expect(page.locator("#id_amend-reason_error")).to_have_text("Give a reason for the amendment.")
    expect(reason).to_be_focused()
    assert "id_amend-reason_error" in reason.get_attribute("aria-describedby").split()
    expect(page.locator("[data-amend-form]").get_by_label("Final label")).to_have_value("normal")
    assert_no_axe_violations(page, "review page, amendment without a reason")
    assert _same_document(page)

    reason.fill("Overlapping soft tissue on the lateral view.")
    page.locator("[data-amend-form]").get_by_role("button", name="Save the amendment").click()

    expect(summary).to_contain_text("Override — final label normal")
    history = page.locator(".review-history")
    expect(history).to_contain_text("Agree — final label pneumonia")
    expect(history).to_contain_text("Consolidation.")
    expect(history).to_contain_text("Reason: Overlapping soft tissue on the lateral view.")
    expect(page.locator(".messages")).to_contain_text("Review amended: override, final label normal.")
    expect(summary).to_be_focused()
    assert _same_document(page), "the page reloaded"
    screenshot(page, "review-amended")
    review = Review.objects.get(id=prediction.review.id)
    assert (review.decision, review.final_label) == ("override", "normal")
    assert list(review.amendments.values_list("previous_decision", "reason")) == [
        ("agree", "Overlapping soft tissue on the lateral view.")
    ]


def test_the_next_study_opens_at_the_top_with_its_patient_in_view(page, login, browser_radiologist):
    # A reader who scrolled down to the form must not land on the next patient's image with that
    # patient's name above the screen, as if the study had not changed.
    model = make_aimodel()
    first = StudyFactory(patient=PatientFactory(family_name="Firstread"), accession_number="ACC-FIRST", priority=1)
    following = StudyFactory(patient=PatientFactory(family_name="Nextread"), accession_number="ACC-NEXT", priority=3)
    for study in (first, following):
        make_prediction(make_image(study, name="cxr.png"), model, label="pneumonia")
        study_refresh_status(study_id=study.id)

    page.set_viewport_size({"width": 1280, "height": 600})
    login(page, "radiologist-browser")
    page.goto(f"/review/{first.id}/")
    expect(page.locator("[data-viewer]")).to_have_attribute("data-ready", "true")
    _mark_page(page)
    form = page.locator("[data-review-form]")
    form.get_by_label("Agree").check()
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    assert page.evaluate("window.scrollY") > 0
    form.get_by_role("button", name="Save and go to next").click()

    expect(page.get_by_role("heading", name=re.compile("Review ACC-NEXT"))).to_be_in_viewport()
    assert _same_document(page), "the page reloaded"
    expect(page.locator(".reading-head").get_by_text("NEXTREAD")).to_be_in_viewport()
    expect(page.locator(".messages")).to_be_in_viewport()
    assert page.evaluate("document.activeElement.name") == "decision"
