"""A private stack for fault tests: its own PostgreSQL and Redis on free loopback ports, gunicorn and
Celery workers pointed at them. The tests stop, flush and restart these servers, never the machine's."""

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stack.api import Api
from stack.processes import Process, app_env, make_root, manage, seed, start_gunicorn, start_worker
from stack.servers import MissingBinary, PrivatePostgres, PrivateRedis, sql
from tests.conftest import build_tiny_keras_model, tiny_card

# Short limits so that recovery happens within a test: a claim older than 12 s is stale, a task
# not started after 3 s is re-sent, and the sweeper (celery beat) runs every second.
STACK_SETTINGS = {
    "MEDPORTAL_TASK_TIME_LIMIT": "12",
    "MEDPORTAL_REQUEUE_AFTER": "3",
    "MEDPORTAL_SWEEP_INTERVAL": "1",
    "MEDPORTAL_DRAIN_SECONDS": "2",
    "MEDPORTAL_BATCH_SIZE": "8",
    "MEDPORTAL_GPU_QUEUE": "gpu",
}


def build_slow_keras_model(path: Path) -> Path:
    """A CNN that takes about a second per batch of 8 on a 2-core CPU: a batch can be interrupted."""
    import keras

    keras.utils.set_random_seed(11)
    inputs = keras.Input((128, 128, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for index in range(4):
        x = keras.layers.Conv2D(48, 3, padding="same", activation="relu", name=f"conv{index}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    keras.Model(inputs, outputs).save(path)
    return path


def _require_servers() -> None:
    try:
        PrivatePostgres.check_binaries()
        PrivateRedis.check_binaries()
    except MissingBinary as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Fault tests need real servers: {exc}")
        pytest.skip(str(exc))


@dataclass
class Stack:
    root: Path
    postgres: PrivatePostgres
    redis: PrivateRedis
    env: dict[str, str]
    api: Api
    patient: str
    web: Process
    workers: list[Process] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return self.postgres.url()

    def worker(self, name: str, *, beat: bool = False, **settings: str) -> Process:
        env = {**self.env, **{key: str(value) for key, value in settings.items()}}
        worker = start_worker(env, self.root, name=name, queues=["gpu", "default"], beat=beat, warm_models=1)
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop(timeout=15)
        self.workers.clear()

    def statuses(self, prediction_ids) -> dict[str, str]:
        rows = sql(
            self.database_url,
            "SELECT id::text, status FROM inference_prediction WHERE id::text = ANY(%s)",
            (list(prediction_ids),),
        )
        return dict(rows)

    def predictions(self, prediction_ids) -> list[dict]:
        rows = sql(
            self.database_url,
            "SELECT id::text, status, attempts, worker_host, heatmap, error FROM inference_prediction "
            "WHERE id::text = ANY(%s)",
            (list(prediction_ids),),
        )
        keys = ("id", "status", "attempts", "worker_host", "heatmap", "error")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def all_succeeded(self, prediction_ids) -> bool:
        statuses = self.statuses(prediction_ids)
        return len(statuses) == len(set(prediction_ids)) and set(statuses.values()) == {"succeeded"}

    def diagnostics(self) -> str:
        parts = [f"--- {w.name} ---\n{w.log()[-2500:]}" for w in self.workers]
        parts.append(f"--- web ---\n{self.web.log()[-2000:]}")
        return "\n".join(parts)


@pytest.fixture(scope="session")
def stack():
    _require_servers()
    root = make_root("medportal-faults-")
    postgres = PrivatePostgres(root / "postgres").init()
    postgres.start()
    redis = PrivateRedis(root / "redis")
    redis.start()
    web = None
    try:
        postgres.create_database()
        env = app_env(database_url=postgres.url(), broker_url=redis.url(), root=root, **STACK_SETTINGS)
        manage(env, "migrate", "--noinput")
        tiny = build_tiny_keras_model(root / "tiny.keras")
        slow = build_slow_keras_model(root / "slow.keras")
        slow_card = tiny_card(
            name="slow-chest", display_name="Slow chest test model", modalities=["DX"], input_size=[128, 128]
        )
        slow_card["gradcam_layer"] = "conv3"
        info = seed(
            env,
            models=[
                {"weights": str(tiny), "card": tiny_card(modalities=["CR"])},
                {"weights": str(slow), "card": slow_card},
            ],
        )
        web, base = start_gunicorn(env, root, workers=2, threads=4)
        stack = Stack(
            root=root,
            postgres=postgres,
            redis=redis,
            env=env,
            api=Api(base, info["token"]),
            patient=info["patient"],
            web=web,
        )
        yield stack
        stack.stop_workers()
    finally:
        if web is not None:
            web.stop(timeout=10)
        redis.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fault_stack(stack):
    """The shared private stack, with this test's workers stopped afterwards (and the servers up)."""
    yield stack
    stack.stop_workers()
    if not stack.redis.process or stack.redis.process.poll() is not None:
        stack.redis.start()
