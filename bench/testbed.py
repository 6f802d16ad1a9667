"""The benchmark's set-up and tear-down, and the calls every measurement makes on what it set up.

A database of its own (created and dropped), an empty Redis database index (only the keys this run
created are removed), every shipped model registered on a queue of its own, and gunicorn.
"""

from __future__ import annotations

import json
import os
import threading
import time

import psycopg2
import redis

from stack import REPO_ROOT
from stack.api import Api
from stack.polling import wait_until
from stack.processes import Process, app_env, make_root, manage, seed, start_gunicorn, start_worker

ZOO = REPO_ROOT / "inference" / "zoo"


def shipped_cards() -> list[dict]:
    cards = []
    for card_path in sorted(ZOO.glob("*/card.json")):
        if (card_path.parent / "model.keras").exists():
            card = json.loads(card_path.read_text())
            card["_dir"] = str(card_path.parent)
            cards.append(card)
    return cards


class Database:
    """Direct reads of the benchmark database (finish times come from the rows the worker wrote)."""

    def __init__(self, url: str):
        self.connection = psycopg2.connect(url)
        self.connection.autocommit = True
        self.lock = threading.Lock()

    def rows(self, query: str, params=()) -> list[tuple]:
        with self.lock, self.connection.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def finished(self, ids: list[str]) -> dict[str, tuple[str, float | None, bool]]:
        rows = self.rows(
            "SELECT id::text, status, extract(epoch from finished_at), heatmap <> '' FROM inference_prediction "
            "WHERE id::text = ANY(%s)",
            (ids,),
        )
        return {row[0]: (row[1], float(row[2]) if row[2] is not None else None, row[3]) for row in rows}

    def activate_only(self, names: list[str]) -> None:
        self.rows(
            "UPDATE inference_aimodel SET status = CASE WHEN name = ANY(%s) THEN 'active' ELSE 'retired' END",
            (names,),
        )


class Testbed:
    def __init__(self, args):
        self.args = args
        self.root = make_root("medportal-bench-")
        self.run_id = f"{os.getpid()}"
        self.database_name = f"medportal_bench_{self.run_id}"
        self.queue = f"bench-gpu-{self.run_id}"
        self.processes: list[Process] = []

    def setup(self) -> dict:
        """Create and seed the database, start gunicorn; returns the settings the run used."""
        admin = psycopg2.connect(self.args.postgres_admin_url)
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{self.database_name}"')
        admin.close()
        base = self.args.postgres_admin_url.rsplit("/", 1)[0]
        self.database_url = f"{base}/{self.database_name}"
        self.redis = redis.Redis.from_url(self.args.redis_url)
        if self.redis.dbsize():
            raise SystemExit(f"{self.args.redis_url} is not empty; choose an unused Redis database with --redis-url.")
        settings = {
            "MEDPORTAL_GPU_QUEUE": self.queue,
            "MEDPORTAL_BATCH_SIZE": str(self.args.batch_size),
            "DJANGO_CONN_MAX_AGE": "60",
        }
        self.env = app_env(database_url=self.database_url, broker_url=self.args.redis_url, root=self.root, **settings)
        manage(self.env, "migrate", "--noinput")
        info = seed(self.env, models=[{"zoo": True}])
        self.db = Database(self.database_url)
        self.db.rows("UPDATE inference_aimodel SET queue = %s", (self.queue,))
        self.patient = info["patient"]
        self.web, base_url = start_gunicorn(
            self.env, self.root, workers=self.args.web_workers, threads=self.args.web_threads
        )
        self.api = Api(base_url, info["token"])
        return {
            **settings,
            "uploads": self.args.uploads,
            "uploaders": self.args.uploaders,
            "images_per_study": self.args.images_per_study,
            "worker_concurrency": 1,
            "gunicorn": f"{self.args.web_workers} workers x {self.args.web_threads} threads",
        }

    def teardown(self) -> None:
        self.stop_workers()
        if getattr(self, "web", None):
            self.web.stop(timeout=10)
        if getattr(self, "db", None):
            self.db.connection.close()
        if getattr(self, "redis", None):
            # Only the keys this run created: the database index was empty when it started.
            keys = list(self.redis.scan_iter(match="*"))
            if keys:
                self.redis.delete(*keys)
        admin = psycopg2.connect(self.args.postgres_admin_url)
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')
        admin.close()

    # --- workers ---

    def start_worker(self, name: str) -> Process:
        """One worker process (concurrency 1, as on one GPU box), ready and with its models warmed."""
        worker = start_worker(self.env, self.root, name=name, queues=[self.queue], warm_models=1)
        self.processes.append(worker)
        return worker

    def stop_workers(self) -> None:
        for process in self.processes:
            process.stop(timeout=20)
        self.processes = []

    # --- uploads and results ---

    def new_study(self, card: dict) -> str:
        """A study the model of ``card`` gives a second opinion on, registered as the RIS would."""
        procedure = card.get("procedure") or ""
        return self.api.create_study(
            patient=self.patient,
            modality=card["modalities"][0],
            body_part=card["body_part"],
            **({"procedure": procedure} if procedure else {}),
        )

    def wait_all(self, ids: list[str], *, heatmaps: bool = False, timeout: float = 600) -> dict:
        def done():
            rows = self.db.finished(ids)
            if len(rows) < len(ids):
                return None
            if any(status == "failed" for status, _, _ in rows.values()):
                failed = [pid for pid, row in rows.items() if row[0] == "failed"]
                raise RuntimeError(f"{len(failed)} predictions failed, e.g. {failed[:3]}")
            if any(status != "succeeded" for status, _, _ in rows.values()):
                return None
            if heatmaps and not all(has_heatmap for _, _, has_heatmap in rows.values()):
                return None
            return rows

        return wait_until(done, timeout=timeout, interval=0.005 if len(ids) == 1 else 0.2, message="predictions")

    def upload(self, study: str, data: bytes, name: str) -> tuple[float, list[str]]:
        return self.upload_series(study, [data], name)

    def upload_series(self, study: str, images: list[bytes], name: str) -> tuple[float, list[str]]:
        """Several images of one study in one request, as a modality sends a series."""
        sent = time.time()
        parts = [
            (f"{name}-{index}.jpg", data, "image/jpeg")
            if data.startswith(b"\xff\xd8")
            else (f"{name}-{index}.png", data, "image/png")
            for index, data in enumerate(images)
        ]
        status, body = self.api.upload(study, parts)
        if status != 201:
            raise RuntimeError(f"Upload failed: {status} {body}")
        return sent, [p["id"] for image in body["images"] for p in image["predictions"]]
