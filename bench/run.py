"""The AI pipeline benchmark: raw forward pass, pipeline throughput, naive baseline, latency, memory.

    python -m bench                      # lightest and heaviest shipped model
    python -m bench --models all         # every shipped model
    python -m bench --uploads 1000 --output bench/results.json

Everything runs in one go on this machine's PostgreSQL and Redis with real gunicorn and
``celery worker`` processes, so the ratios between the numbers hold on a noisy machine. The
benchmark uses a database of its own (created and dropped) and an empty Redis database index;
it never flushes anything it did not create.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.stack import (
    PYTHON,
    REPO_ROOT,
    Api,
    app_env,
    make_root,
    manage,
    seed,
    start_gunicorn,
    start_worker,
    wait_until,
)

ZOO = REPO_ROOT / "inference" / "zoo"
SAMPLES = REPO_ROOT / "samples"
# Which sample image a model's study would carry (first match on the model's name).
SAMPLE_FOR = [
    ("cxr", "cxr-normal-1.png"),
    ("us-breast", "us-breast-benign-1.png"),
    ("fundus", "fundus-grade0-1.png"),
    ("malaria", "malaria-uninfected-1.png"),
    ("smear", "smear-lymphocyte-1.jpg"),
    ("derm", "derm-nv-1.jpg"),
]

TARGET_NAIVE_RATIO = 20.0
TARGET_CEILING_SHARE = 0.5
TARGET_IDLE_P50_MS = 300.0
TARGET_CONCURRENT_P95_MS = 2000.0


def shipped_cards() -> list[dict]:
    cards = []
    for card_path in sorted(ZOO.glob("*/card.json")):
        if (card_path.parent / "model.keras").exists():
            card = json.loads(card_path.read_text())
            card["_dir"] = str(card_path.parent)
            cards.append(card)
    return cards


def probe(*args: str, timeout: float = 900) -> dict:
    result = subprocess.run(
        [PYTHON, "-m", "bench.model_probe", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    if result.returncode:
        raise RuntimeError(f"bench.model_probe {args[0]} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def costs(cards: list[dict]) -> dict[str, dict]:
    """Parameters and multiply-adds per image of each model, read in one process."""
    return probe("cost", *[card["_dir"] for card in cards])


def sample_image(card: dict) -> Path:
    for prefix, name in SAMPLE_FOR:
        if card["name"].startswith(prefix) and (SAMPLES / name).exists():
            return SAMPLES / name
    return SAMPLES / "cxr-normal-1.png"


def distinct_images(source: Path, count: int) -> list[bytes]:
    """``count`` different files made from one real sample image (two pixels differ).

    They keep the sample's format: a smear or dermoscopy camera sends JPEG, and a PNG of
    the same picture costs several times as long to decode.
    """
    import numpy as np
    from PIL import Image

    sample = Image.open(source)
    kind = "JPEG" if sample.format == "JPEG" else "PNG"
    base = np.array(sample.convert("L" if sample.mode in ("L", "P", "1") else "RGB"))
    out = []
    for index in range(count):
        pixels = base.copy()
        pixels.flat[0] = index % 256
        pixels.flat[1] = (index // 256) % 256
        buffer = io.BytesIO()
        # JPEG quantisation can wash out a one-level change, so a comment keeps each file distinct too.
        extra = {"quality": 95, "comment": f"copy {index}".encode()} if kind == "JPEG" else {}
        Image.fromarray(pixels).save(buffer, format=kind, **extra)
        out.append(buffer.getvalue())
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low, high = int(position), min(int(position) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Database:
    """Direct reads of the benchmark database (finish times come from the rows the worker wrote)."""

    def __init__(self, url: str):
        import psycopg2

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


class Bench:
    def __init__(self, args):
        self.args = args
        self.root = make_root("medportal-bench-")
        self.run_id = f"{os.getpid()}"
        self.database_name = f"medportal_bench_{self.run_id}"
        self.queue = f"bench-gpu-{self.run_id}"
        self.results: dict = {
            "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "settings": {},
            "models": {},
        }

    # --- setup and teardown ---

    def setup(self) -> None:
        import psycopg2
        import redis

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
        self.results["settings"] = {
            **settings,
            "uploads": self.args.uploads,
            "uploaders": self.args.uploaders,
            "images_per_study": self.args.images_per_study,
            "worker_concurrency": 1,
            "gunicorn": f"{self.args.web_workers} workers x {self.args.web_threads} threads",
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

    def teardown(self) -> None:
        import psycopg2

        for process in getattr(self, "processes", []):
            process.stop(timeout=20)
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

    # --- measurements ---

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

    def pipeline(self, studies: list[str], images: list[bytes], *, series: bool = False) -> dict:
        """A burst of uploads over many studies from several senders, timed until every prediction
        succeeded (the studies are registered beforehand, as the RIS would have done).

        One image per request, or with ``series`` each study's images in one request.
        """
        ids: list[str] = []
        per_study = max(1, len(images) // len(studies))

        def send(index: int):
            study = studies[min(index // per_study, len(studies) - 1)]
            if series:
                return self.upload_series(study, images[index : index + per_study], f"series-{index}")
            return self.upload(study, images[index], f"burst-{index}")

        requests = range(0, len(images), per_study) if series else range(len(images))

        web_pids = self.web.child_pids()
        worker_pids = [pid for process in self.processes for pid in process.child_pids()]
        web_cpu, worker_cpu = cpu_seconds(web_pids), cpu_seconds(worker_pids)
        started = time.time()
        with ThreadPoolExecutor(self.args.uploaders) as pool:
            for _, batch in pool.map(send, requests):
                ids += batch
        uploaded = time.time()
        rows = self.wait_all(ids, timeout=900)
        finished = max(at for _, at, _ in rows.values())
        web_cpu, worker_cpu = cpu_seconds(web_pids) - web_cpu, cpu_seconds(worker_pids) - worker_cpu
        rows = self.wait_all(ids, heatmaps=True, timeout=900)
        heatmaps_done = time.time()
        return {
            "uploads": len(images),
            "requests": len(requests),
            "predictions": len(ids),
            "seconds_to_all_succeeded": finished - started,
            "images_per_second": len(ids) / (finished - started),
            "upload_requests_per_second": len(requests) / (uploaded - started),
            "seconds_to_all_heatmaps": heatmaps_done - started,
            # CPU spent per upload by the web tier, and per image by the worker up to the last
            # result (the worker's share includes the heatmaps it computed in idle moments).
            "web_cpu_ms_per_image": web_cpu * 1000 / len(images),
            "worker_cpu_ms_per_image": worker_cpu * 1000 / len(ids),
        }

    def idle_latency(self, study: str, images: list[bytes]) -> dict:
        latencies, request_ms, to_claim_ms, claim_to_result_ms = [], [], [], []
        for index, data in enumerate(images):
            sent, ids = self.upload(study, data, f"idle-{index}.png")
            answered = time.time()
            rows = self.wait_all(ids, timeout=60)
            finished = max(at for _, at, _ in rows.values())
            latencies.append((finished - sent) * 1000)
            [(claimed,)] = self.db.rows(
                "SELECT extract(epoch from min(started_at)) FROM inference_prediction WHERE id::text = ANY(%s)", (ids,)
            )
            request_ms.append((answered - sent) * 1000)
            to_claim_ms.append((float(claimed) - answered) * 1000)
            claim_to_result_ms.append((finished - float(claimed)) * 1000)
            self.wait_all(ids, heatmaps=True, timeout=60)  # idle: nothing else in flight
            time.sleep(0.1)
        return {
            **self.summary(latencies),
            "p50_upload_request_ms": percentile(request_ms, 0.5),
            "p50_response_to_claim_ms": percentile(to_claim_ms, 0.5),
            "p50_claim_to_result_ms": percentile(claim_to_result_ms, 0.5),
        }

    def concurrent_latency(self, studies: list[str], images: list[bytes]) -> dict:
        latencies: list[float] = []
        lock = threading.Lock()
        per_sender = len(images) // self.args.latency_uploaders

        def sender(number: int) -> None:
            for index in range(per_sender):
                position = number * per_sender + index
                sent, ids = self.upload(studies[number], images[position], f"conc-{position}.png")
                rows = self.wait_all(ids, timeout=120)
                with lock:
                    latencies.append((max(at for _, at, _ in rows.values()) - sent) * 1000)

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(self.args.latency_uploaders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self.summary(latencies)

    @staticmethod
    def summary(latencies: list[float]) -> dict:
        return {
            "samples": len(latencies),
            "p50_ms": percentile(latencies, 0.5),
            "p95_ms": percentile(latencies, 0.95),
            "mean_ms": statistics.fmean(latencies),
            "max_ms": max(latencies),
        }

    def model(self, card: dict, role: str) -> dict:
        name = card["name"]
        print(f"[{name}] raw forward pass ...", flush=True)
        forward = probe("forward", card["_dir"], "--batch-sizes", self.args.forward_batch_sizes)
        print(f"[{name}] naive baseline ...", flush=True)
        image_path = sample_image(card)
        naive = probe(
            "naive",
            card["_dir"],
            str(image_path),
            "--samples",
            str(self.args.naive_samples),
            "--warm-samples",
            str(self.args.naive_warm_samples),
        )
        # The pipeline uses every core, so the baseline does too: the prototype under a web server
        # with one process per core, all loading and predicting at once.
        processes = os.cpu_count() or 1
        print(f"[{name}] naive baseline, {processes} processes at once ...", flush=True)
        with ThreadPoolExecutor(processes) as pool:
            parallel = list(
                pool.map(
                    lambda _: probe(
                        "naive",
                        card["_dir"],
                        str(image_path),
                        "--samples",
                        str(self.args.naive_samples),
                        "--warm-samples",
                        "0",
                    ),  # fmt: skip
                    range(processes),
                )
            )
        naive["machine_processes"] = processes
        naive["machine_images_per_second"] = sum(p["load_and_predict_per_request_images_per_second"] for p in parallel)

        self.db.activate_only([name])
        worker = start_worker(self.env, self.root, name=f"bench-{name}", queues=[self.queue], warm_models=1)
        self.processes = [worker]
        try:
            procedure = card.get("procedure") or ""

            def new_study() -> str:
                return self.api.create_study(
                    patient=self.patient,
                    modality=card["modalities"][0],
                    body_part=card["body_part"],
                    **({"procedure": procedure} if procedure else {}),
                )

            study = new_study()
            burst_studies = [new_study() for _ in range(max(1, self.args.uploads // self.args.images_per_study))]
            sender_studies = [new_study() for _ in range(self.args.latency_uploaders)]
            total = (
                2 * self.args.uploads
                + self.args.latency_samples
                + self.args.concurrent_samples
                + self.args.drain_uploads
                + 1
            )
            images = distinct_images(image_path, total)
            self.wait_all(self.upload(study, images[0], "warm.png")[1], heatmaps=True, timeout=120)
            images = images[1:]
            print(f"[{name}] pipeline burst of {self.args.uploads} uploads ...", flush=True)
            pipeline = self.pipeline(burst_studies, images[: self.args.uploads])
            images = images[self.args.uploads :]
            print(f"[{name}] pipeline burst of {self.args.uploads} uploads, one request per study ...", flush=True)
            series_studies = [new_study() for _ in burst_studies]
            series = self.pipeline(series_studies, images[: self.args.uploads], series=True)
            images = images[self.args.uploads :]
            print(f"[{name}] idle latency ...", flush=True)
            idle = self.idle_latency(study, images[: self.args.latency_samples])
            images = images[self.args.latency_samples :]
            print(f"[{name}] latency with {self.args.latency_uploaders} concurrent uploaders ...", flush=True)
            concurrent = self.concurrent_latency(sender_studies, images[: self.args.concurrent_samples])
            worker.stop(timeout=20)
            print(f"[{name}] queue drain: {self.args.drain_uploads} uploads queued, then one worker ...", flush=True)
            drain_studies = [new_study() for _ in range(max(1, self.args.drain_uploads // self.args.images_per_study))]
            drain = self.drain(drain_studies, images[self.args.concurrent_samples :], name)
        finally:
            for process in self.processes:
                process.stop(timeout=20)
            self.processes = []
        return {
            "role": role,
            "parameters": card["_cost"]["parameters"],
            "multiply_adds": card["_cost"]["multiply_adds"],
            "input_size": card["input_size"],
            "color_mode": card["color_mode"],
            "upload_image": f"{image_path.name} (distinct copies in its own format)",
            "forward": forward,
            "naive": naive,
            "pipeline": pipeline,
            "pipeline_series": series,
            "latency_idle": idle,
            "latency_concurrent": concurrent,
            "drain": drain,
        }

    def drain(self, studies: list[str], images: list[bytes], name: str) -> dict:
        """The worker alone: predictions queued while no worker runs, then drained by one worker.

        Timed from its first claim to its last result, so it shows how close the worker itself
        comes to the model's ceiling when the web tier is not competing for the same two cores.
        """
        ids: list[str] = []
        per_study = max(1, len(images) // len(studies))
        with ThreadPoolExecutor(self.args.uploaders) as pool:
            for _, batch in pool.map(
                lambda i: self.upload(studies[min(i // per_study, len(studies) - 1)], images[i], f"drain-{i}.png"),
                range(len(images)),
            ):
                ids += batch
        worker = start_worker(self.env, self.root, name=f"bench-drain-{name}", queues=[self.queue], warm_models=1)
        self.processes = [worker]
        self.wait_all(ids, timeout=900)
        [(first, last)] = self.db.rows(
            "SELECT extract(epoch from min(started_at)), extract(epoch from max(finished_at)) "
            "FROM inference_prediction WHERE id::text = ANY(%s)",
            (ids,),
        )
        worker.stop(timeout=20)
        self.processes = []
        seconds = float(last) - float(first)
        return {"predictions": len(ids), "seconds": seconds, "images_per_second": len(ids) / seconds}

    def memory(self, cards: list[dict]) -> dict:
        """Resident memory of a worker's pool process with every shipped model loaded and warmed."""
        self.db.activate_only([card["name"] for card in cards])
        worker = start_worker(self.env, self.root, name="bench-memory", queues=[self.queue], warm_models=1)
        self.processes = [worker]
        try:
            from bench.model_probe import rss_mib

            children = worker.child_pids()
            return {
                "models_loaded": len(cards),
                "pool_process_rss_mib": sum(rss_mib(pid) for pid in children),
                "parent_process_rss_mib": rss_mib(worker.process.pid),
            }
        finally:
            worker.stop(timeout=20)
            self.processes = []


BURSTS = {"pipeline": "one image per request", "pipeline_series": "one request per study"}


def targets(results: dict) -> list[tuple[bool, str]]:
    lines = []
    models = results["models"]
    heaviest = next((m for m in models.values() if m["role"] == "heaviest"), None) or max(
        models.values(), key=lambda m: m["multiply_adds"]
    )
    for name, m in models.items():
        naive = m["naive"]["machine_images_per_second"]
        for burst, how in BURSTS.items():
            pipeline = m[burst]["images_per_second"]
            ratio = pipeline / naive
            lines.append(
                (
                    ratio >= TARGET_NAIVE_RATIO,
                    f"{name}: pipeline ({how}) {pipeline:.1f} img/s is {ratio:.0f}x the naive baseline "
                    f"({naive:.2f} img/s on {m['naive']['machine_processes']} processes); "
                    f"target >= {TARGET_NAIVE_RATIO:.0f}x",
                )
            )
        p50 = m["latency_idle"]["p50_ms"]
        lines.append((p50 < TARGET_IDLE_P50_MS, f"{name}: idle p50 latency {p50:.0f} ms; target < 300 ms"))
        p95 = m["latency_concurrent"]["p95_ms"]
        lines.append((p95 < TARGET_CONCURRENT_P95_MS, f"{name}: 8-uploader p95 latency {p95:.0f} ms; target < 2000 ms"))
    ceiling = heaviest["forward"]["ceiling_images_per_second"]
    name = next(n for n, m in models.items() if m is heaviest)
    for burst, how in BURSTS.items():
        pipeline = heaviest[burst]["images_per_second"]
        lines.append(
            (
                pipeline >= TARGET_CEILING_SHARE * ceiling,
                f"{name} (heaviest): pipeline ({how}) {pipeline:.1f} img/s is {pipeline / ceiling:.0%} of its raw "
                f"forward-pass ceiling ({ceiling:.1f} img/s); target >= 50%",
            )
        )
    return lines


def table(results: dict) -> str:
    rows = [
        ("model", "MMAC/img", "input", "ceiling img/s", "pipeline img/s", "series img/s", "naive img/s",
         "naive 1-proc img/s", "naive(warm) img/s", "drain img/s", "idle p50/p95 ms", "8-up p50/p95 ms",
         "heatmaps done s"),
    ]  # fmt: skip
    for name, m in results["models"].items():
        rows.append(
            (
                f"{name} ({m['role']})",
                f"{m['multiply_adds'] / 1e6:.1f}",
                "x".join(str(v) for v in m["input_size"]),
                f"{m['forward']['ceiling_images_per_second']:.0f} (b={m['forward']['ceiling_batch_size']})",
                f"{m['pipeline']['images_per_second']:.1f}",
                f"{m['pipeline_series']['images_per_second']:.1f}",
                f"{m['naive']['machine_images_per_second']:.2f}",
                f"{m['naive']['load_and_predict_per_request_images_per_second']:.2f}",
                f"{m['naive']['loaded_once_predict_per_request_images_per_second']:.1f}",
                f"{m['drain']['images_per_second']:.1f}",
                f"{m['latency_idle']['p50_ms']:.0f} / {m['latency_idle']['p95_ms']:.0f}",
                f"{m['latency_concurrent']['p50_ms']:.0f} / {m['latency_concurrent']['p95_ms']:.0f}",
                f"{m['pipeline']['seconds_to_all_heatmaps']:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    memory = results.get("memory")
    if memory:
        lines.append("")
        lines.append(
            f"Worker memory with all {memory['models_loaded']} shipped model(s) loaded: pool process "
            f"{memory['pool_process_rss_mib']:.0f} MiB RSS (parent {memory['parent_process_rss_mib']:.0f} MiB)."
        )
        for name, m in results["models"].items():
            lines.append(
                f"  {name} alone in a process: {m['forward']['rss_mib_with_model']:.0f} MiB RSS "
                f"(TensorFlow alone {m['forward']['rss_mib_tensorflow_only']:.0f} MiB)."
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="light,heavy", help="light,heavy (default), all, or model names")
    parser.add_argument("--also", default="", help="more models to measure, e.g. the one with the largest input")
    parser.add_argument("--uploads", type=int, default=500)
    parser.add_argument("--uploaders", type=int, default=8, help="concurrent senders in the burst")
    parser.add_argument("--images-per-study", type=int, default=5, help="the burst's images per study")
    parser.add_argument("--latency-samples", type=int, default=40)
    parser.add_argument("--latency-uploaders", type=int, default=8)
    parser.add_argument("--concurrent-samples", type=int, default=160)
    parser.add_argument("--drain-uploads", type=int, default=300)
    parser.add_argument("--naive-samples", type=int, default=10)
    parser.add_argument("--naive-warm-samples", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--forward-batch-sizes", default="1,16,32,64")
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn workers (production runs 4)")
    parser.add_argument("--web-threads", type=int, default=1)
    parser.add_argument("--postgres-admin-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "results.json")
    args = parser.parse_args(argv)

    cards = shipped_cards()
    if not cards:
        raise SystemExit("No shipped models in inference/zoo.")
    for card, cost in zip(cards, costs(cards).values(), strict=True):
        card["_cost"] = cost
    # Light and heavy by the work one image costs (multiply-adds), which sets a model's run time;
    # the parameter count does not (a small input with a wide dense layer is big but cheap).
    by_size = sorted(cards, key=lambda c: c["_cost"]["multiply_adds"])
    if args.models == "light,heavy":
        chosen = [(by_size[0], "lightest")]
        if len(by_size) > 1:
            chosen.append((by_size[-1], "heaviest"))
    elif args.models == "all":
        chosen = [(c, "shipped") for c in by_size]
    else:
        wanted = args.models.split(",")
        chosen = [(c, "chosen") for c in by_size if c["name"] in wanted]

    for name in filter(None, args.also.split(",")):
        chosen += [(c, "extra") for c in by_size if c["name"] == name and all(c is not k for k, _ in chosen)]

    bench = Bench(args)
    bench.results["shipped_models"] = {c["name"]: c["_cost"] for c in by_size}
    try:
        bench.setup()
        for card, role in chosen:
            bench.results["models"][card["name"]] = bench.model(card, role)
        print("[memory] worker with every shipped model loaded ...", flush=True)
        bench.results["memory"] = bench.memory(cards)
    finally:
        bench.teardown()
    bench.results["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    checks = targets(bench.results)
    bench.results["targets"] = [{"pass": ok, "check": text} for ok, text in checks]

    print()
    print(table(bench.results))
    print()
    for ok, text in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    args.output.write_text(json.dumps(bench.results, indent=2) + "\n")
    print(f"\nResults written to {args.output}")
    sys.exit(0 if all(ok for ok, _ in checks) else 1)


if __name__ == "__main__":
    main()
