"""The OHIF Viewer's page, its configuration and its program files, under /viewer/.

Everything here is for signed-in readers (the images' READ rule of accounts.policy). The page is
the viewer's single-page app at any of its routes (``/viewer/viewer?StudyInstanceUIDs=...``); it
records which studies were opened in it. The images themselves come from DICOMweb, which records
each instance it serves: the viewer holds no patient data of its own.
"""

import json
from datetime import UTC, datetime

from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import condition, require_GET

from accounts.policy import Act, Resource, allowed_roles
from audit.access import audit_access, audit_exempt, audited
from audit.models import AuditInterface
from imaging.dicom.selectors import dicom_studies
from imaging.viewer import dist
from web.access import role_required

VIEWER_ROLES = allowed_roles(Resource.IMAGE, Act.READ)
# The viewer is isolated from other origins (no window of another site can reach it) and may use
# SharedArrayBuffer, which cornerstone uses for volumes; its workers need the same headers.
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}
YEAR = 365 * 24 * 3600
# The viewer's code handles patient data: it may talk to this origin only (no CDN, no exfiltration),
# compile WebAssembly (its codecs) and run only its own scripts; the page's few inline scripts are
# allowed by their hashes, and the page evaluates no strings. A worker takes its policy from its own
# script's response: the image decoders' glue code (Emscripten's embind) builds functions from
# strings, so scripts, which only a worker reads a policy from, also allow 'unsafe-eval'.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{script}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self' data: blob:; "
    "worker-src 'self' blob:; media-src 'self' blob:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def _secured(response: HttpResponse, *, inline_script_hashes: list[str] = (), worker: bool = False) -> HttpResponse:
    for name, value in ISOLATION_HEADERS.items():
        response[name] = value
    script = " 'unsafe-eval'" if worker else "".join(f" 'sha256-{digest}'" for digest in inline_script_hashes)
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.format(script=script)
    return response


def _unavailable(request: HttpRequest, exc: dist.ViewerNotInstalled) -> HttpResponse:
    return render(request, "imaging/viewer_unavailable.html", {"reason": str(exc)}, status=503)


def _study_uids(request: HttpRequest) -> list[str]:
    # OHIF takes several studies as a repeated parameter or one comma-separated value.
    values = request.GET.getlist("StudyInstanceUIDs") + request.GET.getlist("studyInstanceUIDs")
    return [uid.strip() for value in values for uid in value.split(",") if uid.strip()]


@audited(AuditInterface.UI)
@role_required(VIEWER_ROLES)
@require_GET
def viewer_page(request: HttpRequest, route: str = "") -> HttpResponse:
    """GET /viewer/<route>: a program file of the viewer if ``route`` names one, else the viewer's page."""
    try:
        if route and (path := dist.dist_file(route)) is not None:
            return _asset(request, path)
        if not route and not _study_uids(request):
            # The viewer opens studies chosen in MedPortal; its own study list is switched off.
            return redirect("pages:home")
        public_url = reverse("pages:viewer")
        html = dist.index_html(public_url=public_url, config_url=reverse("pages:viewer-config"))
    except dist.ViewerNotInstalled as exc:
        return _unavailable(request, exc)
    studies = list(dicom_studies().filter(study_instance_uid__in=_study_uids(request)))
    if studies:
        audit_access(request, rows=[(study, study.patient_id) for study in studies], detail="viewer")
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return _secured(response, inline_script_hashes=dist.inline_script_hashes(html))


def _asset(request: HttpRequest, path) -> HttpResponse:
    """A file of the dist, gzipped where the browser takes it: rewritten for the sub-path if it names the
    root (kept in memory), else streamed from disk (its gzipped copy from the install step, if any)."""
    gzip_ok = "gzip" in request.headers.get("Accept-Encoding", "")
    media_type = dist.media_type(path)
    rewritten = dist.rewritten(path, public_url=reverse("pages:viewer"))
    if rewritten is not None:
        etag = rewritten.etag.replace('"', "") + ("-gz" if gzip_ok else "")

        @condition(etag_func=lambda request: f'"{etag}"')
        def send(request):
            return HttpResponse(rewritten.gzipped if gzip_ok else rewritten.body, content_type=media_type)

        response = send(request)
        compressed = gzip_ok
        response["Vary"] = "Accept-Encoding"
    else:
        stat = path.stat()
        source = dist.precompressed(path) if gzip_ok else None
        compressed = source is not None

        @condition(last_modified_func=lambda request: datetime.fromtimestamp(int(stat.st_mtime), tz=UTC))
        def send(request):
            return FileResponse((source or path).open("rb"), content_type=media_type)

        response = send(request)
        if compressed or dist.precompressed(path):
            response["Vary"] = "Accept-Encoding"
    if compressed and response.status_code == 200:
        response["Content-Encoding"] = "gzip"
        response.headers.pop("Content-Disposition", None)
    # Names with a content hash never change; the rest (index, config, icons) are checked each time.
    response["Cache-Control"] = f"private, max-age={YEAR}, immutable" if dist.is_immutable(path) else "no-cache"
    return _secured(response, worker=path.suffix in (".js", ".mjs"))


@audit_exempt("the viewer's configuration: where MedPortal's DICOMweb is; no patient data")
@role_required(VIEWER_ROLES)
@require_GET
def viewer_config(request: HttpRequest) -> HttpResponse:
    """GET /viewer/app-config.js: OHIF's window.config, pointing at MedPortal's own DICOMweb."""
    settings_json = json.dumps(
        {
            "routerBasename": reverse("pages:viewer").rstrip("/"),
            "dicomwebPath": reverse("dicomweb:studies").removesuffix("/studies"),
            "homePath": reverse("pages:home"),
        }
    )
    body = render_to_string("imaging/viewer_config.js", {"settings_json": settings_json}, request=request)
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return _secured(response)
