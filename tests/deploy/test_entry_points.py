"""Every way of starting Django defaults to production settings, and every launcher names its own."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stack.processes import app_env

REPO = Path(__file__).resolve().parents[2]
SECRET = "x" * 20 + "-production-like-secret-key-for-the-check-0123456789"


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment without any Django or MedPortal setting (as on a fresh shell)."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "MEDPORTAL_", "CELERY_")) and k != "DATABASE_URL"
    }
    return {**inherited, **extra}


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def _production_env(**extra: str) -> dict[str, str]:
    return _env(
        DJANGO_SECRET_KEY=SECRET,
        MEDPORTAL_DEID_KEY="y" * 20 + "-production-like-deidentification-key",
        DJANGO_ALLOWED_HOSTS="medportal.example.org",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/medportal",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        **extra,
    )


def test_manage_py_without_settings_module_fails_loudly_for_the_missing_secret():
    result = _run(sys.executable, "manage.py", "check", env=_env())
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
    assert "ImproperlyConfigured" in result.stderr


@pytest.mark.parametrize("module", ["medportal.wsgi", "medportal.celery"])
def test_wsgi_and_celery_default_to_production_settings(module):
    code = f"import os, {module}; print(os.environ['DJANGO_SETTINGS_MODULE'])"
    result = _run(sys.executable, "-c", code, env=_production_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "medportal.settings.production"


def test_wsgi_without_secrets_refuses_to_start():
    result = _run(sys.executable, "-c", "import medportal.wsgi", env=_env())
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_manage_py_without_settings_module_runs_production_when_configured():
    code = "from django.conf import settings; print(settings.DEBUG, settings.SECURE_PROXY_SSL_HEADER)"
    result = _run(sys.executable, "manage.py", "shell", "-c", code, env=_production_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False None"


def test_the_proxy_tls_header_is_trusted_only_when_configured():
    code = "from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER)"
    result = _run(
        sys.executable,
        "manage.py",
        "shell",
        "-c",
        code,
        env=_production_env(DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "('HTTP_X_FORWARDED_PROTO', 'https')"


@pytest.mark.parametrize("script", ["bin/demo", "bin/test"])
def test_launch_scripts_name_their_settings(script):
    text = (REPO / script).read_text()
    export = re.search(r"^export DJANGO_SETTINGS_MODULE=(\S+)$", text, re.MULTILINE)
    assert export, f"{script} must export DJANGO_SETTINGS_MODULE"
    first_django_use = min(text.index(word) for word in ("manage.py", "pytest") if word in text)
    assert export.start() < first_django_use


def test_pytest_and_ci_name_the_test_settings():
    assert 'DJANGO_SETTINGS_MODULE = "medportal.settings.test"' in (REPO / "pyproject.toml").read_text()
    assert "bin/test" in (REPO / ".ci" / "run").read_text()


def test_processes_started_by_the_tests_and_the_benchmark_name_their_settings(settings):
    env = app_env(database_url="sqlite:///x", broker_url="filesystem://", root=Path("/nonexistent"))
    assert env["DJANGO_SETTINGS_MODULE"] == "medportal.settings.local"
    # Every other place that starts manage.py, celery or gunicorn builds its environment from
    # one of these, or names the settings itself.
    for path in [*REPO.glob("tests/**/*.py"), *REPO.glob("bench/*.py"), *REPO.glob("stack/*.py")]:
        text = path.read_text()
        if re.search(r"\"manage\.py\"|\"celery\"|\"gunicorn\"", text) and "subprocess" in text:
            assert "DJANGO_SETTINGS_MODULE" in text or "app_env" in text, path


def test_wsgi_loads_the_views_and_keeps_them_out_of_full_collections():
    code = "import gc, sys, medportal.wsgi; print('medportal.urls' in sys.modules, gc.get_freeze_count())"
    result = _run(sys.executable, "-c", code, env=_production_env())
    assert result.returncode == 0, result.stderr
    loaded, frozen = result.stdout.strip().splitlines()[-1].split()
    assert loaded == "True"
    assert int(frozen) > 50_000
