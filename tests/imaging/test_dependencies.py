"""imaging knows nothing of AI: no module of it, pages and API included, imports inference.

Work that follows a stored image is asked for through ``imaging.signals.images_stored``; pages,
API views and admin pages that show AI results next to the images live in inference.
"""

import ast

import pytest

from tests.conftest import REPO_ROOT

IMAGING_MODULES = sorted(
    str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "imaging").rglob("*.py") if "migrations" not in path.parts
)


def imported_modules(path) -> set[str]:
    """Every module the file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", IMAGING_MODULES)
def test_imaging_never_imports_inference(module):
    imports = imported_modules(REPO_ROOT / module)
    assert not {name for name in imports if name == "inference" or name.startswith("inference.")}


def test_imaging_services_and_dicom_services_do_not_import_each_other():
    assert "imaging.dicom.services" not in imported_modules(REPO_ROOT / "imaging/services.py")
    assert "imaging.intake" not in imported_modules(REPO_ROOT / "imaging/dicom/services.py")
