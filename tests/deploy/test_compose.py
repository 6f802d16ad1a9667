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
    assert set(web["depends_on"]) == {"postgres", "redis", "migrate"}


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
    assert "${APP_DB_PASSWORD:?" in compose["services"]["web"]["environment"]["DATABASE_URL"]
    assert "${POSTGRES_PASSWORD:?" in compose["services"]["migrate"]["environment"]["DATABASE_URL"]


def test_access_log_leaves_out_query_strings(compose):
    # Searches carry MRNs and names in the query string; %(U)s is the path alone, %(r)s would log them.
    command = compose["services"]["web"]["command"]
    assert "%(U)s" in command and "%(r)s" not in command and "%(q)s" not in command


def test_every_service_names_its_settings_module(compose):
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("medportal"):
            assert service["environment"]["DJANGO_SETTINGS_MODULE"] == "medportal.settings.production", name


def test_flower_needs_a_login_and_is_published_on_loopback_only(compose):
    flower = compose["services"]["flower"]
    # Flower reads FLOWER_BASIC_AUTH itself; ${VAR:?} makes compose refuse to start without it.
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert "basic-auth" not in flower["command"]  # a secret on the command line shows in process lists
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])


def test_gunicorn_is_reached_through_the_proxy_only_and_the_proxy_header_is_opt_in(compose):
    web = compose["services"]["web"]
    assert all(port.startswith("127.0.0.1:") for port in web["ports"])
    # No default: the header is trusted only where the operator's TLS proxy sets it.
    assert web["environment"]["DJANGO_SECURE_PROXY_SSL_HEADER"] == "${DJANGO_SECURE_PROXY_SSL_HEADER:-}"


def test_the_image_defaults_to_production_settings():
    dockerfile = (COMPOSE.parent / "Dockerfile").read_text()
    assert "DJANGO_SETTINGS_MODULE=medportal.settings.production" in dockerfile


def test_the_image_carries_the_ohif_viewer_where_the_settings_look_for_it():
    dockerfile = (COMPOSE.parent / "Dockerfile").read_text()
    assert "ensure_ohif_viewer" in dockerfile
    assert "COPY --from=viewer /build/node_modules/@ohif/app/dist node_modules/@ohif/app/dist" in dockerfile
    # WORKDIR /app: the default MEDPORTAL_OHIF_DIST of the settings, BASE_DIR/node_modules/@ohif/app/dist.
    assert "WORKDIR /app" in dockerfile


def test_only_the_migrate_step_connects_as_the_owner_of_the_tables(compose):
    # The application's role owns no table, so it cannot drop the audit trail's triggers.
    migrate = compose["services"]["migrate"]
    assert migrate["environment"]["DATABASE_URL"].startswith("postgres://medportal:")
    assert migrate["command"].index("migrate --noinput") < migrate["command"].index(
        "audit_app_role --role medportal_app"
    )
    assert migrate["restart"] == "no" and set(migrate["depends_on"]) == {"postgres"}
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("medportal") and name != "migrate":
            assert service["environment"]["DATABASE_URL"].startswith("postgres://medportal_app:"), name
            assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
            assert "manage.py migrate" not in service["command"], name
