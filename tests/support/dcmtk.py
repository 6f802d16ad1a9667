"""DCMTK's command-line tools, found on PATH outside the virtualenv.

pynetdicom installs console scripts with the same names (storescu, findscu, ...) into the
virtualenv's bin, which bin/test puts first on PATH. Tests that say they drive DCMTK must run
DCMTK, so the virtualenv's directory is skipped.
"""

import os
import shutil
import sys
from pathlib import Path

import pytest

_VENV_BIN = Path(sys.prefix, "bin").resolve()


def _search_path() -> str:
    entries = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(e for e in entries if e and Path(e).resolve() != _VENV_BIN)


def dcmtk_tool(name: str) -> str | None:
    """The absolute path of DCMTK's ``name``, or None when DCMTK is not installed."""
    return shutil.which(name, path=_search_path())


def require_dcmtk(*names: str) -> dict[str, str]:
    """Paths of the named tools; in CI a missing tool fails the module, elsewhere it is skipped."""
    found = {name: dcmtk_tool(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        message = f"DCMTK ({', '.join(missing)}) is missing: apt-get install dcmtk"
        if os.environ.get("CI"):
            raise RuntimeError(message)
        pytest.skip(message, allow_module_level=True)
    return found
