import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """The shared data sets (``$MEDPORTAL_DATASETS`` or ``<repo>/../shared/datasets``)."""
    root = Path(os.environ.get("MEDPORTAL_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
    if not root.is_dir():
        pytest.skip(f"shared data sets not available at {root}")
    return root
