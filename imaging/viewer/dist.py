"""Reading OHIF's prebuilt dist/ so that it runs under a sub-path (e.g. /viewer/), not at the site root.

The package is built for the root: its index.html names every asset as ``/file`` and each webpack
runtime (the app's and each web worker's) loads its chunks, WebAssembly and workers from the fixed
public path ``"/"``. Rebuilding is not an option (the package ships no sources worth building here),
so the few files that carry the root are rewritten as they are served, from the pristine dist:
the page's and the style sheets' links get the viewer's prefix, and each webpack runtime takes its public path from
``window.PUBLIC_URL`` (set by the page) or, in a worker, from the folder of the worker's own script.
"""

import base64
import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings

# webpack's runtime line in every entry bundle built with publicPath "/".
WEBPACK_PUBLIC_PATH = b'__webpack_require__.p = "/";'
RUNTIME_PUBLIC_PATH = (
    b"__webpack_require__.p = (typeof window !== 'undefined' && window.PUBLIC_URL) || "
    b"self.location.href.replace(/[^/]*([?#].*)?$/, '');"
)
# Names webpack gives with a content hash (``app.bundle.0f6159c501addfe9.js``, ``37fa160cc3a47cfd.wasm``):
# their bytes never change under the same name, so browsers may keep them for a year.
HASHED_NAME = re.compile(r"(^|\.)[0-9a-f]{16}\.[a-z0-9]+$")
# Types the platform's table may lack or get wrong; WebAssembly must be application/wasm for streaming compilation.
MEDIA_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".woff2": "font/woff2",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
}


class ViewerNotInstalled(LookupError):
    """The dist folder is missing: the install step (bin/_npm.sh) has not been run here."""


def dist_root() -> Path:
    root = Path(settings.MEDPORTAL_OHIF_DIST)
    if not (root / "index.html").is_file():
        raise ViewerNotInstalled(f"The OHIF Viewer is not installed (no index.html in {root}).")
    return root


def dist_file(relative: str) -> Path | None:
    """The file of the dist named by a URL path, or None; never anything outside the dist folder."""
    root = dist_root().resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def media_type(path: Path) -> str:
    known = MEDIA_TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def is_immutable(path: Path) -> bool:
    return bool(HASHED_NAME.search(path.name))


@dataclass(frozen=True)
class Rewritten:
    body: bytes
    gzipped: bytes
    etag: str


@lru_cache(maxsize=32)
def _rewritten(path: Path, mtime_ns: int, public_url: str) -> Rewritten | None:
    data = path.read_bytes()
    if path.suffix == ".css":
        # Fonts and images named from the root: url(/a34f9d1faa5f3315.woff2).
        changed = re.sub(rb"url\(/(?!/)", b"url(" + public_url.encode(), data)
    else:
        # Only the few entry bundles hold webpack's runtime.
        changed = data.replace(WEBPACK_PUBLIC_PATH, RUNTIME_PUBLIC_PATH)
    if changed == data:
        return None
    # Compressed once per process: the app bundle is 17 MB as it is, a quarter of that gzipped.
    return Rewritten(body=changed, gzipped=gzip.compress(changed, 6), etag=f'"{mtime_ns:x}-{len(changed):x}"')


def rewritten(path: Path, *, public_url: str) -> Rewritten | None:
    """The file made to work under ``public_url`` if it names the root, else None (it is served as it is)."""
    if path.suffix not in (".js", ".mjs", ".css"):
        return None
    return _rewritten(path, path.stat().st_mtime_ns, public_url)


def index_html(*, public_url: str, config_url: str) -> str:
    """The dist's index.html with every root-relative link under ``public_url`` and our app-config."""
    html = (dist_root() / "index.html").read_text(encoding="utf-8")
    html = re.sub(r'(href|src|content)="/(?!/)', rf'\1="{public_url}', html)
    html = html.replace(f'src="{public_url}app-config.js"', f'src="{config_url}"')
    return html.replace('window.PUBLIC_URL="/"', f"window.PUBLIC_URL={_js_string(public_url)}")


def _js_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("<", "\\u003c") + '"'


def inline_script_hashes(html: str) -> list[str]:
    """The base64 sha256 of each inline script of the page, for its Content-Security-Policy."""
    return [
        base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        for body in re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", html, flags=re.S)
    ]


def precompressed(path: Path) -> Path | None:
    """The gzipped copy the install step made beside a file (``name.gz``), if it is there and current."""
    candidate = path.with_name(path.name + ".gz")
    if candidate.is_file() and candidate.stat().st_mtime >= path.stat().st_mtime:
        return candidate
    return None
