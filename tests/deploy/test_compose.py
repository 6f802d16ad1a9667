"""docker-compose.yml describes the production shape; Docker itself does not run in the test suite."""

from pathlib import Path

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_has_the_production_services(compose):
    assert {"postgres", "redis", "web", "gpu-worker", "flower", "beat"} <= set(compose["services"])


def test_web_serves_with_gunicorn_on_postgres_and_redis(compose):
    web = compose["services"]["web"]
    assert "gunicorn medportal.wsgi:application" in web["command"]
    env = web["environment"]
    assert env["DATABASE_URL"].startswith("postgres://") and env["CELERY_BROKER_URL"].startswith("redis://")
    assert env["DJANGO_SETTINGS_MODULE"] == "medportal.settings.production"
    assert set(web["depends_on"]) == {"postgres", "redis"}


def test_gpu_worker_consumes_only_the_gpu_queue_with_an_nvidia_reservation(compose):
    worker = compose["services"]["gpu-worker"]
    command = worker["command"]
    assert "celery -A medportal worker" in command and "--queues gpu " in command + " "
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert worker["build"]["args"]["GPU"] == "1"


def test_sweeper_runs_and_files_are_shared_through_one_volume(compose):
    assert "--beat" in compose["services"]["beat"]["command"]
    for name in ("web", "gpu-worker", "beat"):
        assert "media:/srv/media" in compose["services"][name]["volumes"]
    assert "media" in compose["volumes"]


def test_secrets_have_no_defaults(compose):
    # ${VAR:?message} makes compose refuse to start without the secret.
    assert "${POSTGRES_PASSWORD:?" in compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert "${POSTGRES_PASSWORD:?" in compose["services"]["web"]["environment"]["DATABASE_URL"]


def test_access_log_leaves_out_query_strings(compose):
    # Searches carry MRNs and names in the query string; %(U)s is the path alone, %(r)s would log them.
    command = compose["services"]["web"]["command"]
    assert "%(U)s" in command and "%(r)s" not in command and "%(q)s" not in command
