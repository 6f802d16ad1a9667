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
from tests.faults.gate import Gate

# A bound, not a synchronisation: a worker loading TensorFlow and warming both test models on a
# machine whose cores are shared by several test runs at once can take minutes.
WORKER_READY_TIMEOUT = 300

# Every process of the stack gets this on its PYTHONPATH, so that it can load the gated model.
GATE_SITE = Path(__file__).resolve().parent / "gate_site"

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
    gate: Gate
    workers: list[Process] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return self.postgres.url()

    def worker(self, name: str, *, beat: bool = False, **settings: str) -> Process:
        env = {**self.env, **{key: str(value) for key, value in settings.items()}}
        worker = start_worker(
            env, self.root, name=name, queues=["gpu", "default"], beat=beat, warm_models=1, timeout=WORKER_READY_TIMEOUT
        )
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
        python_path = os.pathsep.join(filter(None, [str(GATE_SITE), os.environ.get("PYTHONPATH")]))
        env = app_env(
            database_url=postgres.url(), broker_url=redis.url(), root=root, PYTHONPATH=python_path, **STACK_SETTINGS
        )
        manage(env, "migrate", "--noinput")
        tiny = build_tiny_keras_model(root / "tiny.keras")
        gate = Gate(root / "gate")
        # Keras (and TensorFlow under it) is heavy: only the fault stack builds the gated model.
        from tests.faults.gate_layer import build_gated_keras_model  # noqa: PLC0415

        gated = build_gated_keras_model(root / "gated.keras", gate_directory=gate.directory)
        gated_card = tiny_card(
            name="gated-chest", display_name="Gated chest test model", modalities=["DX"], input_size=[128, 128]
        )
        info = seed(
            env,
            models=[
                {"weights": str(tiny), "card": tiny_card(modalities=["CR"])},
                {"weights": str(gated), "card": gated_card},
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
            gate=gate,
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
    stack.gate.open()
    if not stack.redis.process or stack.redis.process.poll() is not None:
        stack.redis.start()
