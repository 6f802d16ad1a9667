"""The worklist keeps up on its own: a study that arrives appears without a reload, a STAT arrival is
announced once (assertively) and marked, other changes are said once in a polite live region."""

import pytest
from django.contrib.sessions.models import Session
from playwright.sync_api import expect

from audit.models import AuditEvent
from imaging.models import Priority
from inference.models import Prediction, Review, ReviewDecision
from inference.study_status import study_refresh_status
from tests.factories import PatientFactory, StudyFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

ROWS = "/worklist/rows/"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every text the two live regions are given, recorded from before the page's own script runs.
RECORD_ANNOUNCEMENTS = """
window.__spoken = [];
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-worklist-status], [data-worklist-alert]").forEach((region) => {
    new MutationObserver(() => window.__spoken.push([region.getAttribute("role"), region.textContent]))
      .observe(region, { childList: true, characterData: true, subtree: true });
  });
});
"""


def awaiting_review(model, **fields):
    study = StudyFactory(**fields)
    make_prediction(make_image(study, name=f"{study.accession_number}.png"), model, label="normal", confidence=0.7)
    study_refresh_status(study_id=study.id)
    return study


def polls(page) -> int:
    return int(page.locator("[data-worklist-results]").get_attribute("data-polls"))


def wait_for_polls(page, count: int) -> None:
    page.wait_for_function(f"() => Number(document.querySelector('[data-worklist-results]').dataset.polls) >= {count}")


def spoken(page, role: str) -> list[str]:
    return [text for region, text in page.evaluate("window.__spoken") if region == role]


def test_a_new_stat_study_appears_without_a_reload_and_is_announced_once(
    page, login, screenshot, browser_radiologist, settings, assert_no_axe_violations
):
    settings.MEDPORTAL_WORKLIST_POLL_SECONDS = 1
    model = make_aimodel()
    early = awaiting_review(model, accession_number="ACC-EARLY", patient=PatientFactory(family_name="Early"))
    page.add_init_script(RECORD_ANNOUNCEMENTS)
    login(page, "radiologist-browser")
    page.goto("/worklist/")
    rows = page.locator("table.worklist tbody tr")
    expect(rows).to_have_count(1)
    expect(page.locator("[data-worklist-results]")).to_have_attribute("data-poll-seconds", "1")
    page.evaluate("window.__sameDocument = true")
    wait_for_polls(page, 2)
    assert page.evaluate("window.__spoken") == []  # what was there on opening is not news
    # The polls found the rows the page opened with: answered 304, so no audit rows beyond the page's.
    assert AuditEvent.objects.filter(path=ROWS).count() == 0
    assert AuditEvent.objects.filter(path="/worklist/").count() == 1

    polls_before_stat = polls(page)
    stat = awaiting_review(model, accession_number="ACC-STAT", priority=Priority.STAT)
    stat_row = rows.filter(has_text="ACC-STAT")
    expect(stat_row).to_be_visible()
    expect(rows.first).to_contain_text("ACC-STAT")  # STAT first in triage order
    expect(stat_row).to_have_class("worklist__row--new worklist__row--stat-new")
    expect(stat_row.get_by_text("New", exact=True)).to_be_visible()
    arrived_at = polls(page)
    wait_for_polls(page, arrived_at + 2)
    assert spoken(page, "alert") == ["New STAT study: ACC-STAT, DX Chest."]
    assert spoken(page, "status") == []  # said once, assertively; not again in the polite region
    # The changed rows were sent (and audited, both studies); the polls that found them unchanged were 304.
    sent = list(AuditEvent.objects.filter(path=ROWS).values_list("object_id", flat=True))
    assert set(sent) == {str(early.id), str(stat.id)}
    assert len(sent) < 2 * (polls(page) - polls_before_stat)
    screenshot(page, "worklist-stat-arrived")
    assert_no_axe_violations(page, "the worklist, a STAT study just arrived")

    awaiting_review(model, accession_number="ACC-ROUTINE")
    expect(rows).to_have_count(3)
    arrived_at = polls(page)
    wait_for_polls(page, arrived_at + 2)
    assert len(spoken(page, "alert")) == 1
    [polite] = spoken(page, "status")
    assert polite.startswith("1 new study (")
    expect(page.locator("[data-worklist-status]")).to_have_text(polite)

    # A listed study changes (another image), then is reviewed elsewhere and leaves the list:
    # each is said once.
    make_prediction(make_image(early, name="second.png"), model, label="normal", confidence=0.7)
    study_refresh_status(study_id=early.id)
    expect(rows.filter(has_text="ACC-EARLY").locator('[data-label="Images"]')).to_have_text("2")
    wait_for_polls(page, polls(page) + 2)
    for prediction in Prediction.objects.filter(image__study=early):
        Review.objects.create(
            prediction=prediction,
            decision=ReviewDecision.AGREE,
            final_label=prediction.label,
            reviewer=browser_radiologist,
        )
    study_refresh_status(study_id=early.id)
    expect(rows).to_have_count(2)
    wait_for_polls(page, polls(page) + 2)
    assert [text.split(" (")[0] for text in spoken(page, "status")] == [
        "1 new study",
        "1 study updated",
        "1 study left the list",
    ]
    assert len(spoken(page, "alert")) == 1
    assert page.evaluate("window.__sameDocument === true")

    # Opened again, the list is what it is: nothing is announced, the STAT study no more than the rest.
    page.reload()
    expect(rows).to_have_count(2)
    wait_for_polls(page, 2)
    assert page.evaluate("window.__spoken") == []


def test_columns_sort_from_the_keyboard_and_the_list_still_refreshes(
    page, login, browser_radiologist, settings, assert_no_axe_violations
):
    settings.MEDPORTAL_WORKLIST_POLL_SECONDS = 1
    model = make_aimodel()
    awaiting_review(model, accession_number="ACC-B", patient=PatientFactory(family_name="Brown"))
    awaiting_review(model, accession_number="ACC-A", patient=PatientFactory(family_name="Adams"), priority=1)
    login(page, "radiologist-browser")
    page.goto("/worklist/?q=ACC-B")
    rows = page.locator("table.worklist tbody tr")
    expect(rows).to_have_count(1)
    page.get_by_label("Patient, MRN or accession").fill("")
    page.get_by_label("Patient, MRN or accession").press("Enter")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("ACC-A")
    patient = page.locator("th a[data-sort=patient]")
    patient.focus()
    page.keyboard.press("Enter")
    expect(page.locator("th[aria-sort=ascending] a[data-sort=patient]")).to_be_visible()
    expect(rows.first).to_contain_text("ADAMS")
    page.keyboard.press("Tab")  # focus moves on from the page's top as after any page load
    page.locator("th a[data-sort=patient]").focus()
    page.keyboard.press("Enter")
    expect(page.locator("th[aria-sort=descending] a[data-sort=patient]")).to_be_visible()
    expect(rows.first).to_contain_text("BROWN")
    assert_no_axe_violations(page, "the worklist, sorted by a column")
    # A poll replaces the rows but keeps the keyboard user's place.
    review = rows.first.get_by_role("link", name="Review")
    review.focus()
    start = polls(page)
    wait_for_polls(page, start + 2)
    assert page.evaluate("document.activeElement.closest('tr').textContent").count("ACC-B") == 1
    # On a tablet (768 px) the headings become cards; the sort stays reachable and nothing scrolls sideways.
    page.set_viewport_size({"width": 768, "height": 900})
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    expect(page.get_by_label("Sort by")).to_be_visible()
    # The headings are hidden on a tablet until a sort link has focus, then they show.
    page.locator("th a[data-sort=images]").focus()
    expect(page.locator("th a[data-sort=images]")).to_be_visible()
    assert_no_axe_violations(page, "the worklist on a tablet, a sort heading focused")

    page.goto("/worklist/?received_from=2026-03-10&received_to=2026-03-01&sort=nope&q=" + "x" * 70)
    expect(page.locator("#id_received_to_error")).to_contain_text("The “to” date is before the “from” date.")
    expect(page.locator("#id_sort_error")).to_contain_text("shown in triage order")
    expect(page.locator("#id_q_error")).to_contain_text("at most 64 characters")
    assert_no_axe_violations(page, "the worklist, with invalid search and filters")


def test_a_signed_out_session_takes_the_list_off_the_screen(page, login, browser_radiologist, settings):
    settings.MEDPORTAL_WORKLIST_POLL_SECONDS = 1
    awaiting_review(make_aimodel(), accession_number="ACC-PRIVATE")
    login(page, "radiologist-browser")
    page.goto("/worklist/")
    expect(page.locator("table.worklist")).to_contain_text("ACC-PRIVATE")
    Session.objects.all().delete()  # as when the idle timeout or an administrator ends the session
    page.wait_for_url("**/login/**")
    expect(page.get_by_text("ACC-PRIVATE")).to_have_count(0)
