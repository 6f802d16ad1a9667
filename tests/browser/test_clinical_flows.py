"""The main journeys, in a real browser against a live server and a real Celery worker."""

import base64
import datetime
import io
import re

import pytest
from PIL import Image as PILImage
from playwright.sync_api import expect

from audit.models import AuditEvent
from imaging.models import Study, StudyStatus
from imaging.storage import blob_store, content_name, sha256_hex
from inference.models import Prediction, PredictionStatus, Review
from inference.study_status import study_refresh_status
from tests.factories import PatientFactory, StudyFactory
from tests.support.workers import wait_for
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AI_TIMEOUT_MS = 120_000


def _results_done(page, count: int) -> None:
    results = page.locator("#study-results [data-prediction-status=succeeded]")
    expect(results).to_have_count(count, timeout=AI_TIMEOUT_MS)


def _mark_page(page) -> None:
    # A reload would drop this flag: finding it later proves the results arrived without one.
    page.evaluate("window.__sameDocument = true")


def _same_document(page) -> bool:
    return page.evaluate("window.__sameDocument === true")


def test_staff_registers_a_study_and_sees_both_ai_results_arrive(
    page, login, screenshot, browser_staff, celery_worker, tiny_model, tmp_path, sample_image_bytes
):
    login(page, "staff-browser")
    screenshot(page, "dashboard-staff")

    page.get_by_role("link", name="Patients").first.click()
    page.get_by_role("link", name="New patient").click()
    page.get_by_label("MRN").fill("MRN-BROWSER-1")
    page.get_by_label("Family name").fill("Okafor")
    page.get_by_label("Given name").fill("Ada")
    page.get_by_label("Date of birth").fill("1984-05-17")
    page.get_by_label("Sex").select_option("F")
    screenshot(page, "patient-form")
    page.get_by_role("button", name="Create patient").click()
    expect(page.get_by_role("heading", name="OKAFOR, Ada")).to_be_visible()

    page.get_by_role("link", name="New study").click()
    page.get_by_label("Modality").select_option("DX")
    page.get_by_label("Body part").select_option("CHEST")
    page.get_by_label("Accession number").fill("ACC-BROWSER-1")
    page.get_by_label("Priority").select_option("2")
    page.get_by_label("Description").fill("Cough and fever for three days")
    screenshot(page, "study-form")
    page.get_by_role("button", name="Create study").click()
    expect(page.get_by_role("heading", name=re.compile("Study ACC-BROWSER-1"))).to_be_visible()

    files = []
    for name in ("cxr-normal-1.png", "cxr-pneumonia-1.png"):
        path = tmp_path / name
        path.write_bytes(sample_image_bytes(name))
        files.append(str(path))
    _mark_page(page)
    page.locator("input[type=file]").set_input_files(files)

    expect(page.locator(".upload-item--ok")).to_have_count(2)
    _results_done(page, 2)
    assert _same_document(page)
    results = page.locator("#study-results")
    expect(results).to_contain_text("tiny-chest v0.0.1")
    expect(results).to_contain_text("Confidence")
    expect(page.locator("#study-status")).to_have_text("AI done")
    # The live region announced the results that arrived, each with model version, confidence and
    # the second-opinion notice; the results list itself is not a live region re-read on every poll.
    assert page.locator("#study-results").get_attribute("aria-live") is None
    announced = page.locator("[data-results-status]")
    expect(announced).to_contain_text("tiny-chest v0.0.1")
    expect(announced).to_contain_text("confidence")
    expect(announced).to_contain_text("not a diagnosis")
    expect(page.get_by_text("AI second opinion — not a diagnosis.")).to_be_visible()
    screenshot(page, "study-page")

    study = Study.objects.get(accession_number="ACC-BROWSER-1")
    assert study.images.count() == 2
    assert set(Prediction.objects.filter(image__study=study).values_list("status", flat=True)) == {"succeeded"}

    page.get_by_role("link", name="Patients").first.click()
    page.get_by_label("MRN or name").fill("okafor")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("cell", name="MRN-BROWSER-1")).to_be_visible()
    screenshot(page, "patient-list")


def test_a_dropped_corrupt_file_is_reported_while_the_good_one_goes_through(
    page, login, screenshot, browser_staff, celery_worker, tiny_model, tmp_path, sample_image_bytes
):
    study = StudyFactory(accession_number="ACC-MIXED", patient=PatientFactory(family_name="Mixed"))
    good = tmp_path / "good.png"
    good.write_bytes(sample_image_bytes("cxr-pneumonia-2.png"))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(sample_image_bytes("cxr-normal-2.png")[:60])

    login(page, "staff-browser")
    page.goto(f"/studies/{study.id}/")
    _mark_page(page)
    # Dropped on the drop zone, as a user drags files from their desktop.
    files = [{"name": path.name, "b64": base64.b64encode(path.read_bytes()).decode()} for path in (corrupt, good)]
    dropped = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const file of files) {
                const bytes = Uint8Array.from(atob(file.b64), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], file.name, { type: "image/png" }));
            }
            return transfer;
        }""",
        files,
    )
    page.dispatch_event("[data-dropzone]", "dragover", {"dataTransfer": dropped})
    expect(page.locator("[data-dropzone]")).to_have_class(re.compile("is-over"))
    page.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": dropped})

    rejected = page.locator(".upload-item--error")
    expect(rejected).to_have_count(1)
    expect(rejected).to_contain_text("corrupt.png")
    expect(rejected.locator(".upload-item__error")).not_to_be_empty()
    expect(page.locator(".upload-item--ok")).to_contain_text("good.png")
    _results_done(page, 1)
    assert _same_document(page)
    screenshot(page, "upload-mixed-batch")
    assert list(study.images.values_list("original_filename", flat=True)) == ["good.png"]


def test_the_upload_button_opens_the_file_chooser_instead_of_complaining(
    page, login, browser_staff, tmp_path, sample_image_bytes
):
    # Choosing files uploads them at once and empties the control; pressing Upload afterwards, as
    # the form invites, used to end in the browser's "Please select one or more files".
    study = StudyFactory(accession_number="ACC-BUTTON", modality="OT", body_part="OTHER")
    image = tmp_path / "first.png"
    image.write_bytes(sample_image_bytes("cxr-normal-2.png"))

    login(page, "staff-browser")
    page.goto(f"/studies/{study.id}/")
    upload = page.locator("[data-upload-button]")
    with page.expect_file_chooser() as chooser:
        upload.click()
    chooser.value.set_files(str(image))
    expect(page.locator(".upload-item--ok")).to_contain_text("first.png")
    expect(upload).to_be_enabled()

    with page.expect_file_chooser():
        upload.click()
    assert list(study.images.values_list("original_filename", flat=True)) == ["first.png"]


def _heatmap_name(size: tuple[int, int]) -> str:
    buffer = io.BytesIO()
    PILImage.radial_gradient("L").resize(size).save(buffer, format="PNG")
    data = buffer.getvalue()
    return blob_store(data=data, name=content_name("heatmaps", sha256_hex(data), ".png")).name


def test_radiologist_overrides_a_result_and_the_study_leaves_the_worklist(
    page, login, screenshot, browser_radiologist, sample_image_bytes
):
    model = make_aimodel()
    patient = PatientFactory(family_name="Lindqvist", given_name="Erik")
    study = StudyFactory(patient=patient, accession_number="ACC-REVIEW", priority=1, description="Fever")
    image = make_image(study, name="cxr.png", data=sample_image_bytes("cxr-pneumonia-1.png"))
    prediction = make_prediction(image, model, label="pneumonia", confidence=0.91, heatmap=_heatmap_name((28, 28)))
    other = StudyFactory(accession_number="ACC-LATER")
    make_prediction(make_image(other, name="later.png"), model, label="normal", confidence=0.7)
    for s in (study, other):
        study_refresh_status(study_id=s.id)

    login(page, "radiologist-browser")
    screenshot(page, "dashboard-radiologist")
    page.get_by_role("link", name="Worklist").first.click()
    rows = page.locator("table.worklist tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("ACC-REVIEW")  # STAT and flagged: first in triage order
    screenshot(page, "worklist")
    # Reflow (WCAG 1.4.10): on a 768 px tablet and at 200% zoom of a 1280 px screen, nothing scrolls
    # sideways and the Review action is on screen.
    for width in (768, 640):
        page.set_viewport_size({"width": width, "height": 900})
        overflow = page.evaluate(
            """() => [document.documentElement.scrollWidth - document.documentElement.clientWidth,
                      ...[...document.querySelectorAll('.table-wrap')].map((w) => w.scrollWidth - w.clientWidth)]"""
        )
        assert max(overflow) <= 0, f"sideways scrolling at {width} px: {overflow}"
        box = rows.first.get_by_role("link", name="Review").bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width
    screenshot(page, "worklist-640px")
    page.set_viewport_size({"width": 1366, "height": 900})

    rows.first.get_by_role("link", name="Review").click()
    viewer = page.locator("[data-viewer]")
    expect(viewer).to_have_attribute("data-ready", "true")
    heatmap = page.locator("[data-heatmap-canvas]")
    expect(heatmap).to_be_hidden()
    page.get_by_role("button", name="Grad-CAM heatmap").click()
    expect(heatmap).to_be_visible()
    expect(page.get_by_role("button", name="Grad-CAM heatmap")).to_have_attribute("aria-pressed", "true")
    # The overlay really is coloured: the hottest pixel is not gray.
    colour = page.evaluate(
        """() => { const c = document.querySelector('[data-heatmap-canvas]');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let best = 0; for (let i = 0; i < d.length; i += 4) { if (d[i+3] > d[best+3]) best = i; }
                   return [d[best], d[best+1], d[best+2], d[best+3]]; }"""
    )
    assert colour[3] > 0 and len(set(colour[:3])) > 1
    # Viridis: the hottest pixel is yellow (not jet's dark red), and the legend says what it means.
    assert colour[0] > 200 and colour[1] > 200 and colour[2] < 100, colour
    expect(page.locator("[data-heatmap-legend]")).to_contain_text("low")
    page.get_by_role("button", name="Zoom in").click()
    expect(page.get_by_text("AI second opinion — not a diagnosis.")).to_be_visible()
    screenshot(page, "review")

    page.get_by_label("Override").check()
    page.get_by_label("Final label").select_option("normal")
    page.get_by_label("Comment").fill("Overlapping soft tissue, not consolidation.")
    page.get_by_role("button", name="Save and go to next").click()
    expect(page.get_by_role("heading", name=re.compile("Review ACC-LATER"))).to_be_visible()

    review = wait_for(lambda: Review.objects.filter(prediction=prediction).first())
    assert (review.decision, review.final_label, review.reviewer.username) == (
        "override",
        "normal",
        "radiologist-browser",
    )
    assert review.comment == "Overlapping soft tissue, not consolidation."
    page.get_by_role("link", name="Worklist").first.click()
    expect(rows).to_have_count(1)
    expect(rows.first).not_to_contain_text("ACC-REVIEW")
    study.refresh_from_db()
    assert study.status == StudyStatus.REVIEWED
    assert Prediction.objects.get(id=prediction.id).status == PredictionStatus.SUCCEEDED

    # The printed report: the record and both pictures, without the page's navigation and footer.
    page.goto(f"/studies/{study.id}/report/")
    page.emulate_media(media="print")
    expect(page.locator(".site-header")).to_be_hidden()
    expect(page.locator(".site-footer")).to_be_hidden()
    expect(page.get_by_role("button", name="Print")).to_be_hidden()
    report = page.locator("article.report")
    expect(report).to_contain_text("Confidence 91.0%".lower())
    expect(report).to_contain_text("v1.2.0")
    expect(report).to_contain_text("AI second opinion — not a diagnosis")
    expect(report).to_contain_text("Overlapping soft tissue, not consolidation.")
    pictures = page.locator(".report__figures img")
    expect(pictures).to_have_count(2)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.report__figures img')].every((i) => i.complete && i.naturalWidth > 0)"
    )
    screenshot(page, "study-report-print")
    page.emulate_media(media="screen")


def test_staff_cannot_open_the_review_page(page, login, screenshot, browser_staff):
    study = StudyFactory(accession_number="ACC-FORBIDDEN")
    login(page, "staff-browser")
    response = page.goto(f"/review/{study.id}/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="You cannot open this page")).to_be_visible()
    expect(page.get_by_text("radiologist role")).to_be_visible()
    expect(page.get_by_role("link", name="Worklist")).to_have_count(0)
    screenshot(page, "forbidden")


def test_a_40_image_study_is_read_with_the_keyboard_alone(page, login, screenshot, browser_radiologist):
    model = make_aimodel()
    patient = PatientFactory(family_name="Series", given_name="Sam")
    study = StudyFactory(patient=patient, accession_number="ACC-SERIES", modality="DX", priority=2)
    for number in range(40, 0, -1):  # uploaded last-to-first: read in file-name order all the same
        make_prediction(make_image(study, name=f"img-{number}.png"), model, label="pneumonia", confidence=0.9)
    stat_cr = StudyFactory(accession_number="ACC-CR-STAT", modality="CR", priority=1)  # filtered out
    next_dx = StudyFactory(accession_number="ACC-DX-NEXT", modality="DX", priority=3)
    for other in (stat_cr, next_dx):
        make_prediction(make_image(other, name="other.png"), model, label="normal", confidence=0.8)
    for s in (study, stat_cr, next_dx):
        study_refresh_status(study_id=s.id)

    login(page, "radiologist-browser")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/worklist/?modality=DX")
    page.locator("table.worklist tbody tr").first.get_by_role("link", name="Review").click()
    expect(page.locator("[data-viewer]")).to_have_attribute("data-ready", "true")
    _mark_page(page)

    # Image and decision on one screen at 1280×800, focus on the decision, the AI output with its
    # confidence, model version and the second-opinion notice.
    layout = page.evaluate(
        """() => { const r = (s) => document.querySelector(s).getBoundingClientRect();
                   return { save: r('[data-review-form] button[type=submit]').bottom, image: r('[data-stage]').top,
                            imageBottom: r('[data-stage]').bottom, scrollY: window.scrollY,
                            focus: document.activeElement.name }; }"""
    )
    assert layout["scrollY"] == 0 and layout["save"] <= 800 and layout["image"] < 400, layout
    assert layout["imageBottom"] - layout["image"] > 300, layout
    assert layout["focus"] == "decision"
    side = page.locator(".reading__side")
    expect(side).to_contain_text("Confidence 90.0%")
    expect(side).to_contain_text("cxr-pneumonia v1.2.0")
    expect(side).to_contain_text("AI second opinion — not a diagnosis.")
    expect(page.locator("[data-position]")).to_have_text("1 of 40")
    expect(page.locator(".viewer__name")).to_have_text("img-1.png")
    screenshot(page, "review-reading-1280x800")

    # The help overlay lists the shortcuts; the viewer answers to its keys.
    page.keyboard.press("?")
    expect(page.locator("[data-help]")).to_be_visible()
    expect(page.locator("[data-help]")).to_contain_text("Save and go to the next result")
    screenshot(page, "review-shortcuts-help")
    page.keyboard.press("Escape")
    expect(page.locator("[data-help]")).to_be_hidden()
    zoom = page.locator("[data-zoom-level]").inner_text()
    page.keyboard.press("+")
    expect(page.locator("[data-zoom-level]")).not_to_have_text(zoom)
    page.keyboard.press("2")
    expect(page.locator('[data-preset="2"]')).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("j")
    expect(page.locator("[data-position]")).to_have_text("2 of 40")
    expect(page.locator(".viewer__name")).to_have_text("img-2.png")
    page.keyboard.press("k")
    expect(page.locator("[data-position]")).to_have_text("1 of 40")

    presses = 0

    def press(key: str) -> None:
        nonlocal presses
        page.keyboard.press(key)
        presses += 1

    # First image: override. The AI's label is not preselected, and saving without a label says
    # so next to the control, which then has the focus.
    press("o")
    label = page.get_by_label("Final label")
    expect(label).to_be_focused()
    expect(label).to_have_value("")
    press("Control+Enter")
    expect(page.locator("#id_final_label_error")).to_have_text("Choose the label you read: an override needs one.")
    expect(label).to_be_focused()
    press("ArrowDown")
    expect(label).to_have_value("normal")
    press("Control+Enter")
    expect(page.locator("[data-position]")).to_have_text("2 of 40")
    expect(page.locator(".messages")).to_contain_text("override, final label normal")

    for number in range(2, 41):
        expect(page.locator(".viewer__name")).to_have_text(f"img-{number}.png")
        press("a")
        press("s")
        if number < 40:
            expect(page.locator("[data-position]")).to_have_text(f"{number + 1} of 40")

    # Saving the last one opens the next study of the same filtered worklist (DX, not the STAT CR).
    expect(page.get_by_role("heading", name=re.compile("Review ACC-DX-NEXT"))).to_be_visible()
    assert "modality=DX" in page.url
    assert _same_document(page), "the page reloaded between decisions"
    print(f"\nKey presses to read a 40-image study with the keyboard alone: {presses}")  # noqa: T201 (a reported measure)
    assert presses == 4 + 39 * 2

    reviews = wait_for(
        lambda: (
            list(Review.objects.filter(prediction__image__study=study))
            if Review.objects.filter(prediction__image__study=study).count() == 40
            else None
        )
    )
    decisions = {r.prediction.image.original_filename: (r.decision, r.final_label) for r in reviews}
    assert decisions["img-1.png"] == ("override", "normal")
    assert all(decisions[f"img-{n}.png"] == ("agree", "pneumonia") for n in range(2, 41))


def test_radiologist_opens_the_priors_and_compares_with_the_keyboard(
    page, login, screenshot, browser_radiologist, sample_image_bytes, assert_no_axe_violations
):
    model = make_aimodel()
    patient = PatientFactory(family_name="Prior", given_name="Pat")
    current = StudyFactory(patient=patient, accession_number="ACC-TODAY", study_date=datetime.date(2026, 11, 30))
    make_prediction(make_image(current, name="today-1.png", data=sample_image_bytes("cxr-pneumonia-1.png")), model)
    make_prediction(make_image(current, name="today-2.png", data=sample_image_bytes("cxr-pneumonia-2.png")), model)
    prior = StudyFactory(
        patient=patient, accession_number="ACC-OCTOBER", modality="CR", study_date=datetime.date(2026, 10, 2)
    )
    prediction = make_prediction(
        make_image(prior, name="october.png", data=sample_image_bytes("cxr-normal-1.png")),
        model,
        label="normal",
        confidence=0.77,
    )
    Review.objects.create(prediction=prediction, decision="agree", final_label="normal", reviewer=browser_radiologist)
    for s in (current, prior):
        study_refresh_status(study_id=s.id)

    login(page, "radiologist-browser")
    page.goto(f"/review/{current.id}/")
    expect(page.locator("[data-viewer]")).to_have_attribute("data-ready", "true")
    expect(page.get_by_role("link", name="PRIOR, Pat")).to_have_attribute("href", f"/patients/{patient.id}/")

    # A "p" typed into the comment is a letter, not a shortcut.
    panel = page.locator("[data-priors]")
    comment = page.get_by_label("Comment")
    comment.press("p")
    expect(comment).to_have_value("p")
    expect(panel).to_be_hidden()
    comment.fill("")
    page.evaluate("document.activeElement.blur()")

    # p opens the panel with the focus on its heading; the prior comes with its AI opinion and review.
    page.keyboard.press("p")
    expect(panel).to_be_visible()
    expect(page.locator("#priors-title")).to_be_focused()
    expect(page.locator("[data-priors-toggle]")).to_have_attribute("aria-expanded", "true")
    expect(panel).to_contain_text("2026-10-02 · Computed radiography (X-ray) · Chest")
    expect(panel).to_contain_text("Confidence 77.0%")
    expect(panel).to_contain_text("cxr-pneumonia v1.2.0")
    expect(panel).to_contain_text("AI second opinion — not a diagnosis.")
    expect(panel).to_contain_text("Agree — final label normal")
    screenshot(page, "review-priors")
    assert_no_axe_violations(page, "the review page with the priors open")

    compare_button = panel.locator("[data-compare-open]")
    for _ in range(20):
        if compare_button.evaluate("(button) => button === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(compare_button).to_be_focused()
    page.keyboard.press("Enter")

    dialog = page.locator("[data-compare]")
    expect(dialog).to_be_visible()
    for side in ("current", "prior"):
        expect(dialog.locator(f'[data-compare-pane="{side}"]')).to_have_attribute("data-ready", "true")
    sizes = dialog.locator("[data-compare-img]").evaluate_all("(imgs) => imgs.map((i) => [i.naturalWidth, i.src])")
    assert all(width > 0 for width, _ in sizes), sizes
    assert sizes[0][1].endswith(page.locator("[data-viewer]").get_attribute("data-image-url"))
    assert sizes[1][1].endswith(f"/images/{prediction.image_id}/display.png")
    expect(dialog).to_contain_text("Prior: ACC-OCTOBER · 2026-10-02 · october.png")
    # The comparison's keys zoom both images and stay in the dialog: "a" decides nothing behind it.
    before = dialog.locator("[data-compare-zoom-level]").all_inner_texts()
    page.keyboard.press("+")
    expect(dialog.locator("[data-compare-zoom-level]").first).not_to_have_text(before[0])
    expect(dialog.locator("[data-compare-zoom-level]").last).not_to_have_text(before[1])
    page.keyboard.press("2")  # the High contrast window preset, on both
    for width in dialog.locator("[data-compare-width]").all():
        expect(width).to_have_value("128")
    assert dialog.locator("feFuncR").evaluate_all("(fns) => fns.map((f) => f.getAttribute('slope'))") == ["1.9922"] * 2
    page.keyboard.press("a")
    expect(page.locator("[data-review-form] input[name=decision]:checked")).to_have_count(0)
    screenshot(page, "review-compare")
    assert_no_axe_violations(page, "the review page comparing a prior image with the current one")

    # Escape closes the comparison, focus back on its button.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(compare_button).to_be_focused()

    # The next image of the study keeps the panel open, read once; Escape closes it.
    page.keyboard.press("j")
    expect(page.locator(".viewer__name")).to_have_text("today-2.png")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("ACC-OCTOBER")
    expect(page.locator("[data-priors-toggle]")).to_have_attribute("aria-expanded", "true")
    assert AuditEvent.objects.filter(patient=patient, detail="priors", object_type="patients.patient").count() == 1
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(page.locator("[data-priors-toggle]")).to_be_focused()
    expect(page.locator("[data-priors-toggle]")).to_have_attribute("aria-expanded", "false")
