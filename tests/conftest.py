import json
import os
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.roles import Role
from inference.services import aimodel_register, aimodels_register_shipped
from tests.dicom.support import chest_radiograph_dataset, dataset_bytes
from tests.factories import UserFactory
from tests.support.workers import start_worker

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = REPO_ROOT / "samples"
DATASETS = Path(os.environ.get("MEDPORTAL_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI the suite must run against the real services; a missing one fails the run."""
    if not os.environ.get("CI"):
        return
    database = settings.DATABASES["default"]["ENGINE"]
    if database != "django.db.backends.postgresql":
        raise pytest.UsageError(f"CI must run on PostgreSQL (DATABASE_URL); the database engine is {database}.")
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        raise pytest.UsageError("CI must run on Redis (CELERY_BROKER_URL=redis://...).")

    try:
        redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        raise pytest.UsageError(f"Redis at {settings.CELERY_BROKER_URL} is not reachable: {exc}") from exc
    if not DATASETS.is_dir():
        raise pytest.UsageError(f"CI needs the data sets at {DATASETS}.")


def datasets_available() -> bool:
    return DATASETS.is_dir()


def require_datasets() -> Path:
    """The full data sets: always present in CI; outside it, tests that need them skip."""
    if not DATASETS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"The data sets are missing at {DATASETS}.")
        pytest.skip(f"needs the data sets at {DATASETS}")
    return DATASETS


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Reads cached for a few seconds (queue status, agreement rates) start empty in every test."""
    cache.clear()
    yield


@pytest.fixture
def sample_image_bytes():
    def read(name: str) -> bytes:
        return (SAMPLES / name).read_bytes()

    return read


@pytest.fixture
def chest_radiograph():
    """Bytes of a fresh CR chest radiograph instance (new UIDs each call)."""

    def build(**kwargs) -> bytes:
        return dataset_bytes(chest_radiograph_dataset(**kwargs))

    return build


@pytest.fixture
def staff_user(db):
    return UserFactory(username="staff", role=Role.STAFF)


@pytest.fixture
def radiologist_user(db):
    return UserFactory(username="radiologist", role=Role.RADIOLOGIST)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin", role=Role.ADMIN, is_superuser=True)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def build_tiny_keras_model(path: Path, *, n_classes: int = 2, size: int = 16, channels: int = 1) -> Path:
    """A tiny random-weights CNN, saved as a real .keras file."""
    import keras  # noqa: PLC0415 - TensorFlow takes seconds to load; only tests that need a model pay for it

    keras.utils.set_random_seed(7)
    inputs = keras.Input((size, size, channels))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax")(x)
    keras.Model(inputs, outputs).save(path)
    return path


def tiny_card(**overrides) -> dict:
    card = {
        "name": "tiny-chest",
        "version": "0.0.1",
        "display_name": "Tiny chest test model",
        "task": "classification",
        "labels": ["normal", "pneumonia"],
        "normal_labels": ["normal"],
        "input_size": [16, 16],  # small, so that every test image is at least as large
        "color_mode": "grayscale",
        "preprocessing": {"resize": "stretch"},
        "modalities": ["CR", "DX"],
        "body_part": "CHEST",
        "procedure": "",
        "temperature": 1.0,
        "gradcam_layer": "features",
        "intended_use": "Tests only.",
    }
    card.update(overrides)
    return card


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory) -> Path:
    return build_tiny_keras_model(tmp_path_factory.mktemp("tiny") / "tiny.keras")


@pytest.fixture
def tiny_model(db, tiny_model_file):
    """A registered, active tiny model for CR/DX chest studies (no trained model needed)."""
    return aimodel_register(weights_path=tiny_model_file, card=json.loads(json.dumps(tiny_card())))


@pytest.fixture
def shipped_models(db):
    """Every model shipped in inference/zoo, registered and active."""
    models = aimodels_register_shipped()
    if not models:
        pytest.fail("No shipped models found in inference/zoo.")
    return models


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    """One real `celery worker` process on the test database and this run's queues."""
    worker = start_worker()
    yield worker
    worker.stop()
