"""Real headless Chromium (Debian's package) driven by Playwright against pytest-django's live server.

In CI a missing browser or a missing axe-core (``npm ci``, which bin/test runs) fails the run;
elsewhere the browser tests skip.
"""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.factories import UserFactory

CHROMIUM = os.environ.get("MEDPORTAL_CHROMIUM", "/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
AXE_SCRIPT = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
# The WCAG 2.1 A and AA rules; axe's best-practice and AAA rules are not part of the bar.
AXE_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
PASSWORD = "correct-horse-battery"

# Playwright's sync API runs an event loop in this thread; Django's ORM calls made by the
# test itself are still plain synchronous code, so its async-safety guard does not apply.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Assertions wait for a state, never for a guessed duration; the bound only has to outlast a
# slow shared CI machine (uploads are decoded and stored in the request), where 5 s did not.
expect.set_options(timeout=30_000)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional: without it the browser tests skip
    except ImportError:
        _unavailable("the playwright package is not installed")
    if not Path(CHROMIUM).exists():
        _unavailable(f"Chromium is missing at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # Containers run as root without user namespaces; /dev/shm is often tiny.
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def screenshot():
    """Save a full-page screenshot under test-artifacts/screenshots/ (kept by CI as an artifact)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def _axe_report(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']} <{violation['helpUrl']}>")
        for node in violation["nodes"]:
            summary = " ".join(node.get("failureSummary", "").split())
            lines.append(f"    {' '.join(map(str, node['target']))}: {summary}")
    return "\n".join(lines)


@pytest.fixture(scope="session")
def axe_script() -> Path:
    if not AXE_SCRIPT.exists():
        _unavailable(f"axe-core is missing at {AXE_SCRIPT.relative_to(REPO_ROOT)} (run npm ci)")
    return AXE_SCRIPT


@pytest.fixture
def assert_no_axe_violations(axe_script):
    """Run axe-core's WCAG 2.1 A/AA rules on the page as it is now; fail with every violation.

    Usage: ``assert_no_axe_violations(page, "worklist, filtered to nothing")``. Call it after the
    state to check is on screen (wait for it first): axe reads the DOM once, it does not wait.
    """

    def check(page, context_label: str) -> None:
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.add_script_tag(path=str(axe_script))
        results = page.evaluate(
            "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
            list(AXE_TAGS),
        )
        violations = results["violations"]
        assert not violations, (
            f"axe-core: {len(violations)} WCAG 2.1 AA rule(s) violated on {context_label} "
            f"({page.url}):\n{_axe_report(violations)}"
        )

    return check


@pytest.fixture
def login():
    def sign_in(page, username: str) -> None:
        page.goto("/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/")

    return sign_in


@pytest.fixture
def browser_staff(db):
    return UserFactory(username="staff-browser", role="staff", first_name="Sam", last_name="Staff")


@pytest.fixture
def browser_radiologist(db):
    return UserFactory(username="radiologist-browser", role="radiologist", first_name="Rae", last_name="Radiologist")
