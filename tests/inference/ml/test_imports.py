import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_package_imports_without_tensorflow():
    """The web process imports these modules; TensorFlow must stay out until a worker needs it."""
    code = (
        "import sys\n"
        "import inference.ml.serving, inference.ml.training, inference.ml.evaluation\n"
        "import inference.ml.architectures, inference.ml.augment, inference.ml.report\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=120)
