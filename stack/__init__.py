"""MedPortal as real processes: private PostgreSQL and Redis servers, gunicorn, Celery workers, and a
small API client to talk to them.

The benchmark (``python -m bench``) points these processes at the machine's own servers; the fault
tests start private servers on free loopback ports and stop, flush and restart them. Every process
here is started and stopped by its own pid.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
