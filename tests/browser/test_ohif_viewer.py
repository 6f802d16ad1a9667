"""The OHIF Viewer, served by MedPortal under /viewer/, shows DICOM studies stored through the normal
intake: a CT and an MR series of several slices (the MR JPEG-LS compressed, decoded by the viewer's
WebAssembly codec), a multi-frame colour ultrasound (JPEG baseline frames) and a Structured Report.
Each test reads the viewport's pixels back from the page, counts the series in OHIF's study browser
and fails on any refused request."""

import io
import os

import pydicom
import pytest
from playwright.sync_api import expect

from imaging.intake import IncomingFile, files_intake
from imaging.models import Image, ImageSource, Study
from imaging.viewer import dist
from inference.dicom_report import SR_SERIES_DESCRIPTION
from inference.reports import prediction_report_store
from tests.api.helpers import make_aimodel
from tests.dicom.support import chest_radiograph_dataset, dataset_bytes, shipped_bytes
from tests.dicom.synthetic import basic_text_sr, ct_series, mr_series, new_study, us_cine
from tests.web.conftest import make_prediction

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PATIENT = {"id": "OHIF-0001", "name": "Viewer^Vera"}

# What the largest viewport canvas shows: the share of pixels that are not black, the number of
# distinct grey levels and whether any pixel is clearly coloured. Read through a 2D copy, whatever
# context the viewer drew with.
VIEWPORT_PIXELS = """() => {
  const canvases = [...document.querySelectorAll('canvas.cornerstone-canvas')];
  if (!canvases.length) return null;
  const source = canvases.sort((a, b) => b.width * b.height - a.width * a.height)[0];
  const copy = document.createElement('canvas');
  copy.width = source.width; copy.height = source.height;
  const context = copy.getContext('2d');
  context.drawImage(source, 0, 0);
  const data = context.getImageData(0, 0, copy.width, copy.height).data;
  let lit = 0, coloured = 0; const levels = new Set();
  for (let i = 0; i < data.length; i += 4) {
    const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
    if (r + g + b > 30) lit++;
    if (r > g + 80 && r > b + 80) coloured++;
    levels.add(r >> 2);
  }
  return {lit: lit / (data.length / 4), levels: levels.size, coloured};
}"""


@pytest.fixture(autouse=True)
def ohif_installed():
    try:
        dist.dist_root()
    except dist.ViewerNotInstalled as exc:
        # bin/test installs it (bin/_npm.sh); in CI a missing viewer is a failure, never a skip.
        if os.environ.get("CI"):
            pytest.fail(f"{exc} Run bin/test, which installs it.", pytrace=False)
        pytest.skip(str(exc))


def store(files: list[bytes], user) -> None:
    """Through the one intake path, as STOW-RS stores them."""
    results = files_intake(
        files=[IncomingFile.from_bytes(data) for data in files], source=ImageSource.STOW_RS, uploaded_by=user
    )
    refused = [result.error for result in results if result.image is None]
    assert not refused, refused


def watch_requests(page) -> list[tuple[int, str]]:
    """Every refused or failed request of the page, and anything its Content-Security-Policy blocked."""
    failed: list[tuple[int, str]] = []
    page.on(
        "response", lambda response: failed.append((response.status, response.url)) if response.status >= 400 else None
    )
    page.on("requestfailed", lambda request: failed.append((0, request.url)))
    # Whatever the viewer's Content-Security-Policy blocks is a failure too.
    page.on(
        "console",
        lambda message: failed.append((0, message.text)) if "Content Security Policy" in message.text else None,
    )
    return failed


def open_study(page, study_uid: str) -> None:
    # The viewer's bundle is several megabytes of JavaScript to parse: on a CI host whose cores are
    # busy its first start can take longer than a MedPortal page is given.
    page.goto(f"/viewer/viewer?StudyInstanceUIDs={study_uid}", timeout=60_000)
    expect(page.locator("canvas.cornerstone-canvas").first).to_be_visible(timeout=60_000)
    skip_tour = page.get_by_text("Skip all")
    skip_tour.or_(page.locator("[data-cy=viewport-grid]")).first.wait_for()
    if skip_tour.is_visible():
        skip_tour.click()


def wait_for_image(page, *, coloured: bool = False) -> dict:
    """Wait until the viewport shows an image (most of it lit, many grey levels), and return what it shows."""
    page.wait_for_function(
        f"""() => {{
          const shown = ({VIEWPORT_PIXELS})();
          return shown && shown.lit > 0.05 && shown.levels >= 3 && (!{str(coloured).lower()} || shown.coloured > 50);
        }}""",
        timeout=30_000,
    )
    return page.evaluate(VIEWPORT_PIXELS)


# True once OHIF has made a display set of a DICOM SR through its SR SOP class handler.
SR_DISPLAY_SET = """() => (window.services?.displaySetService?.getActiveDisplaySets() || []).some(
  (set) => set.Modality === 'SR' && set.SOPClassHandlerId.includes('dicom-sr'))"""


def thumbnails(page):
    return page.locator("[data-cy=study-browser-thumbnail]")


def test_a_ct_and_an_mr_series_render_in_the_viewer(page, login, screenshot, browser_staff, assert_no_axe_violations):
    study = new_study(description="CT and MR head")
    store(
        ct_series(patient=PATIENT, study=study, slices=6) + mr_series(patient=PATIENT, study=study, slices=5),
        browser_staff,
    )
    failed = watch_requests(page)
    login(page, "staff-browser")
    # From the study page, as a user gets there (the link opens a new tab; followed here in this one).
    page.goto(f"/studies/{Study.objects.get(study_instance_uid=study['uid']).id}/")
    link = page.get_by_role("link", name="Open in viewer")
    assert link.get_attribute("href") == f"/viewer/viewer?StudyInstanceUIDs={study['uid']}"
    assert_no_axe_violations(page, "a DICOM study's page with its viewer link")
    open_study(page, study["uid"])

    expect(thumbnails(page)).to_have_count(2)
    expect(thumbnails(page).filter(has_text="Axial head")).to_contain_text("6")
    expect(thumbnails(page).filter(has_text="T1 axial")).to_contain_text("5")
    wait_for_image(page)

    # The CT series in the viewport: its six slices, the first drawn, then the next on a key press.
    thumbnails(page).filter(has_text="Axial head").dblclick()
    overlay = page.locator("[data-cy=viewport-overlay-bottom-right]")
    expect(overlay).to_contain_text("(1/6)")
    first = wait_for_image(page)
    page.locator("canvas.cornerstone-canvas").first.click()
    page.keyboard.press("ArrowDown")
    expect(overlay).to_contain_text("(2/6)")
    assert wait_for_image(page)["lit"] > 0.3 and first["lit"] > 0.3  # the head phantom fills the viewport
    screenshot(page, "ohif-ct-mr")
    assert failed == []
    # The header's logo leads back to MedPortal.
    page.get_by_role("link", name="MedPortal").click()
    page.wait_for_url("**/")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_a_multiframe_ultrasound_renders_its_frames_in_colour(page, login, screenshot, browser_staff):
    study = new_study(description="US abdomen")
    store([us_cine(patient=PATIENT, study=study, frames=8)], browser_staff)
    failed = watch_requests(page)
    login(page, "staff-browser")
    open_study(page, study["uid"])

    expect(thumbnails(page)).to_have_count(1)
    overlay = page.locator("[data-cy=viewport-overlay-bottom-right]")
    expect(overlay).to_contain_text("(1/8)")
    wait_for_image(page, coloured=True)
    page.locator("canvas.cornerstone-canvas").first.click()
    page.keyboard.press("End")
    expect(overlay).to_contain_text("(8/8)")
    wait_for_image(page, coloured=True)
    screenshot(page, "ohif-us-multiframe")
    assert failed == []


def test_a_structured_report_opens_in_the_viewer(page, login, browser_staff):
    study = new_study(description="CT with report")
    report = basic_text_sr(patient=PATIENT, study=study)
    [result] = files_intake(
        files=[IncomingFile.from_bytes(report)], source=ImageSource.STOW_RS, uploaded_by=browser_staff
    )
    assert result.stored, result.error
    store(ct_series(patient=PATIENT, study=study, slices=3), browser_staff)
    failed = watch_requests(page)
    login(page, "staff-browser")
    open_study(page, study["uid"])
    wait_for_image(page)
    # OHIF reads the report through its SR handler (a derived display set: its study browser lists only
    # the image series as thumbnails).
    page.wait_for_function(SR_DISPLAY_SET)
    expect(thumbnails(page)).to_have_count(1)
    assert failed == []


def test_a_radiologist_reads_in_the_viewer_without_searching_the_patient_register(page, login, browser_radiologist):
    """OHIF looks for the patient's other studies by PatientID, a patient search that accounts.policy keeps
    for staff: that one request is refused, and the study still opens."""
    study = new_study(description="CT head")
    store(ct_series(patient=PATIENT, study=study, slices=4), browser_radiologist)
    failed = watch_requests(page)
    login(page, "radiologist-browser")
    open_study(page, study["uid"])
    expect(thumbnails(page)).to_have_count(1)
    wait_for_image(page)
    assert [(status, "00100020=" in url) for status, url in failed] == [(403, True)]


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_the_demos_dicom_samples_render_in_the_viewer(page, login, browser_staff, name):
    """The real instances bin/demo files (web.demo.DEMO_DICOM), from pydicom's wheel."""
    data = shipped_bytes(name)
    store([data], browser_staff)
    failed = watch_requests(page)
    login(page, "staff-browser")
    open_study(page, pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID)
    expect(thumbnails(page)).to_have_count(1)
    wait_for_image(page)
    assert failed == []


# Puts the AI report's display set (OHIF's SR handler made it from the stored instance) into the
# active viewport, as a double click on its entry in the study browser's "All" list does.
SHOW_AI_REPORT = """(description) => {
  const sets = window.services?.displaySetService?.getActiveDisplaySets() || [];
  const report = sets.find((set) => set.Modality === 'SR' && (set.SeriesDescription || '').startsWith(description));
  if (!report) return false;
  const grid = window.services.viewportGridService;
  grid.setDisplaySetsForViewport({
    viewportId: grid.getActiveViewportId(),
    displaySetInstanceUIDs: [report.displaySetInstanceUID],
  });
  return true;
}"""


def test_the_ai_second_opinion_shows_in_the_viewer_as_its_structured_report(page, login, screenshot, browser_staff):
    """A DICOM radiograph's AI result, stored into its study as a Comprehensive SR when the result is
    written, is listed by OHIF and read in its SR viewport: finding, confidence and model version."""
    study = new_study(description="Chest with AI")
    radiograph = chest_radiograph_dataset(
        patient_id=PATIENT["id"], patient_name=PATIENT["name"], study_uid=study["uid"]
    )
    store([dataset_bytes(radiograph)], browser_staff)
    # The model comes after the image, so that no worker runs it; the result is made here instead.
    model = make_aimodel()
    image = Image.objects.get(sop_instance_uid=radiograph.SOPInstanceUID)
    prediction = make_prediction(image, model, label="pneumonia", confidence=0.87)
    record = prediction_report_store(prediction_id=prediction.id)
    assert record.image is not None, record.error
    failed = watch_requests(page)
    login(page, "staff-browser")
    open_study(page, study["uid"])
    wait_for_image(page)

    page.wait_for_function(SR_DISPLAY_SET)
    assert page.evaluate(SHOW_AI_REPORT, SR_SERIES_DESCRIPTION)
    report = page.locator("[data-cy=viewport-grid]")
    expect(report).to_contain_text("Finding:")
    expect(report).to_contain_text("pneumonia")
    # OHIF shows a NUM item as its value (DICOM JSON gives a DS as a number) and its unit's code.
    expect(report).to_contain_text("Calibrated confidence: 87 %")
    expect(report).to_contain_text(f"Algorithm Version: {model.version}")
    expect(report).to_contain_text("Probability of normal: 13 %")
    expect(report).to_contain_text("AI second opinion, not a diagnosis")
    screenshot(page, "ohif-ai-report")
    assert failed == []
