"""The OHIF Viewer's page, configuration and program files under /viewer/ (imaging.viewer).

Runs against a small stand-in for the dist, shaped like @ohif/app's (an index.html built for the
root, webpack runtimes with the public path "/", a style sheet naming a font from the root), so it
needs no npm; tests/browser/test_ohif_viewer.py drives the real viewer.
"""

import base64
import gzip
import hashlib
import re

import pytest
from django.urls import reverse

from audit.models import AuditEvent, AuditInterface
from imaging.intake import IncomingFile, files_intake
from imaging.models import ImageSource, Study
from imaging.viewer import dist
from tests.dicom.synthetic import ct_series, new_study
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

INDEX = (
    '<!doctype html><html><head><meta name="msapplication-config" content="/assets/browserconfig.xml">'
    '<script>window.PUBLIC_URL="/"</script><link rel="manifest" href="/manifest.json">'
    '<script rel="preload" as="script" src="/app-config.js"></script>'
    '<script>function browserImportFunction(n){return import(n)}window.PUBLIC_URL="/"</script>'
    '<script defer src="/app.bundle.0f6159c501addfe9.js"></script><link href="/app.bundle.css" rel="stylesheet">'
    '</head><body><div id="root"></div></body></html>'
)
RUNTIME = b'(() => {\n__webpack_require__.p = "/";\n})();\n'


@pytest.fixture
def ohif_dist(tmp_path, settings):
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "app-config.js").write_text("window.config = {dataSources: ['somewhere else']};")
    (root / "app.bundle.0f6159c501addfe9.js").write_bytes(b"var app = 1;\n" + RUNTIME)
    (root / "histogram-worker.bundle.ec5f0cf05ce3909c.js").write_bytes(RUNTIME)
    (root / "8478.bundle.4520037e6185b95f.js").write_bytes(b"var chunk = 2;")
    (root / "app.bundle.css").write_bytes(b"@font-face{src:url(/a34f9d1faa5f3315.woff2)}a{b:url(//cdn.example/x)}")
    (root / "37fa160cc3a47cfd.wasm").write_bytes(b"\0asm\1\0\0\0")
    (root / "assets" / "favicon.ico").write_bytes(b"icon")
    (tmp_path / "secret.txt").write_text("outside the dist")
    settings.MEDPORTAL_OHIF_DIST = str(root)
    return root


def stored_ct_study(user) -> str:
    study = new_study(description="CT head")
    files = ct_series(patient={"id": "VIEW-1", "name": "Viewer^Test"}, study=study, slices=2, size=32)
    files_intake(files=[IncomingFile.from_bytes(data) for data in files], source=ImageSource.STOW_RS, uploaded_by=user)
    return study["uid"]


def test_the_page_serves_the_dist_under_the_viewer_path_with_medportals_config(ohif_dist, radiologist_client):
    response = radiologist_client.get("/viewer/viewer", {"StudyInstanceUIDs": "1.2.3"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'window.PUBLIC_URL="/viewer/"' in html and 'window.PUBLIC_URL="/"' not in html
    assert 'src="/viewer/app-config.js"' in html
    assert 'src="/viewer/app.bundle.0f6159c501addfe9.js"' in html
    assert 'href="/viewer/manifest.json"' in html and 'content="/viewer/assets/browserconfig.xml"' in html
    assert response["Cache-Control"] == "no-store"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["Cross-Origin-Embedder-Policy"] == "require-corp"


def test_the_page_runs_only_its_own_scripts_and_talks_to_this_origin_only(ohif_dist, radiologist_client):
    response = radiologist_client.get("/viewer/viewer", {"StudyInstanceUIDs": "1.2.3"})
    policy = dict(directive.strip().split(" ", 1) for directive in response["Content-Security-Policy"].split(";"))
    html = response.content.decode()
    inline = re.findall(r"<script>(.*?)</script>", html)
    assert len(inline) == 2
    hashes = {f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in inline}
    assert set(policy["script-src"].split()) == {"'self'", "'wasm-unsafe-eval'"} | hashes
    assert policy["connect-src"] == "'self' data: blob:" and policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    # A worker reads its policy from its script's response: the decoders' glue code evaluates strings.
    worker = radiologist_client.get("/viewer/histogram-worker.bundle.ec5f0cf05ce3909c.js")
    assert "script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval';" in worker["Content-Security-Policy"]
    assert "connect-src 'self' data: blob:" in worker["Content-Security-Policy"]


def test_the_config_points_ohif_at_medportals_own_dicomweb(ohif_dist, radiologist_client):
    response = radiologist_client.get(reverse("pages:viewer-config"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    body = response.content.decode()
    assert '"dicomwebPath": "/dicomweb"' in body and '"routerBasename": "/viewer"' in body
    assert '"homePath": "/"' in body and "createLogoComponentFn" in body  # the way back to MedPortal
    assert "somewhere else" not in body  # the dist's own app-config.js is never served
    for key in ("qidoRoot: dicomweb", "wadoRoot: dicomweb", "wadoUriRoot: dicomweb", "showStudyList: false"):
        assert key in body
    assert reverse("dicomweb:studies") == "/dicomweb/studies"


def test_webpack_runtimes_load_their_chunks_from_the_viewer_path(ohif_dist, radiologist_client):
    for name in ("app.bundle.0f6159c501addfe9.js", "histogram-worker.bundle.ec5f0cf05ce3909c.js"):
        response = radiologist_client.get(f"/viewer/{name}")
        assert response.status_code == 200
        assert response["Content-Type"] == "text/javascript"
        assert dist.WEBPACK_PUBLIC_PATH not in response.content
        assert dist.RUNTIME_PUBLIC_PATH in response.content
    chunk = radiologist_client.get("/viewer/8478.bundle.4520037e6185b95f.js")
    assert b"".join(chunk.streaming_content) == b"var chunk = 2;"


def test_style_sheets_name_their_fonts_under_the_viewer_path(ohif_dist, radiologist_client):
    response = radiologist_client.get("/viewer/app.bundle.css")
    assert response["Content-Type"] == "text/css"
    assert response.content == b"@font-face{src:url(/viewer/a34f9d1faa5f3315.woff2)}a{b:url(//cdn.example/x)}"


def test_program_files_have_their_media_types_and_hashed_names_are_cached(ohif_dist, radiologist_client):
    wasm = radiologist_client.get("/viewer/37fa160cc3a47cfd.wasm")
    assert wasm["Content-Type"] == "application/wasm"
    assert wasm["Cache-Control"] == "private, max-age=31536000, immutable"
    assert wasm["Cross-Origin-Embedder-Policy"] == "require-corp"  # workers and WebAssembly of an isolated page
    icon = radiologist_client.get("/viewer/assets/favicon.ico")
    assert icon["Cache-Control"] == "no-cache"
    again = radiologist_client.get("/viewer/assets/favicon.ico", headers={"if-modified-since": icon["Last-Modified"]})
    assert again.status_code == 304
    bundle = radiologist_client.get("/viewer/app.bundle.0f6159c501addfe9.js")
    unchanged = radiologist_client.get(
        "/viewer/app.bundle.0f6159c501addfe9.js", headers={"if-none-match": bundle["ETag"]}
    )
    assert unchanged.status_code == 304


def test_program_files_go_gzipped_to_browsers_that_take_gzip(ohif_dist, radiologist_client):
    chunk = ohif_dist / "8478.bundle.4520037e6185b95f.js"
    (ohif_dist / "8478.bundle.4520037e6185b95f.js.gz").write_bytes(gzip.compress(chunk.read_bytes()))
    zipped = radiologist_client.get(f"/viewer/{chunk.name}", headers={"accept-encoding": "gzip, br"})
    assert zipped["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped["Vary"]
    assert zipped["Content-Type"] == "text/javascript"
    assert gzip.decompress(b"".join(zipped.streaming_content)) == b"var chunk = 2;"
    plain = radiologist_client.get(f"/viewer/{chunk.name}")
    assert "Content-Encoding" not in plain and b"".join(plain.streaming_content) == b"var chunk = 2;"
    # The rewritten runtimes are compressed in memory, and have an ETag of their own per encoding.
    name = "/viewer/app.bundle.0f6159c501addfe9.js"
    bundle, bundle_gz = radiologist_client.get(name), radiologist_client.get(name, headers={"accept-encoding": "gzip"})
    assert bundle_gz["Content-Encoding"] == "gzip" and gzip.decompress(bundle_gz.content) == bundle.content
    assert bundle["ETag"] != bundle_gz["ETag"]


def test_nothing_outside_the_dist_is_served(ohif_dist, radiologist_client):
    for path in ("/viewer/../secret.txt", "/viewer/%2e%2e/secret.txt", "/viewer/assets/../../secret.txt"):
        response = radiologist_client.get(path)
        assert b"outside the dist" not in response.content, path


def test_the_viewer_is_for_signed_in_readers(ohif_dist, client):
    response = client.get("/viewer/viewer?StudyInstanceUIDs=1.2.3")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert client.get("/viewer/app.bundle.0f6159c501addfe9.js").status_code == 302
    assert client.get(reverse("pages:viewer-config")).status_code == 302


def test_opening_a_study_in_the_viewer_is_audited(ohif_dist, radiologist_client, radiologist_user, staff_user):
    study_uid = stored_ct_study(staff_user)
    before = AuditEvent.objects.count()
    response = radiologist_client.get("/viewer/viewer", {"StudyInstanceUIDs": study_uid})
    assert response.status_code == 200
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.latest("id")
    assert (event.actor, event.interface, event.detail, event.path) == (
        radiologist_user,
        AuditInterface.UI,
        "viewer",
        "/viewer/viewer",
    )
    # Program files are not accesses to patient data.
    radiologist_client.get("/viewer/app.bundle.0f6159c501addfe9.js")
    assert AuditEvent.objects.count() == before + 1


def test_the_viewer_root_without_a_study_leads_back_to_medportal(ohif_dist, radiologist_client):
    response = radiologist_client.get("/viewer/")
    assert response.status_code == 302 and response["Location"] == reverse("pages:home")


def test_without_the_dist_the_page_says_the_viewer_is_not_installed(tmp_path, settings, radiologist_client):
    settings.MEDPORTAL_OHIF_DIST = str(tmp_path / "missing")
    response = radiologist_client.get("/viewer/viewer?StudyInstanceUIDs=1.2.3")
    assert response.status_code == 503
    assert "The DICOM viewer is not installed" in response.content.decode()


def test_study_and_review_pages_link_dicom_studies_to_the_viewer(radiologist_client, staff_user):
    study_uid = stored_ct_study(staff_user)
    study = Study.objects.get(study_instance_uid=study_uid)
    link = f'href="/viewer/viewer?StudyInstanceUIDs={study_uid}"'
    assert link in radiologist_client.get(reverse("pages:study-detail", args=[study.id])).content.decode()
    assert link in radiologist_client.get(reverse("pages:review", args=[study.id])).content.decode()
    plain = StudyFactory()
    assert (
        "Open in viewer" not in radiologist_client.get(reverse("pages:study-detail", args=[plain.id])).content.decode()
    )
