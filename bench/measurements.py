"""What the benchmark measures, one model at a time: raw forward pass, naive baseline, pipeline
bursts, latency idle and under load, queue drain; and a worker's memory with every model loaded.

The forward pass and the naive baseline run in processes of their own (``bench.model_probe``);
everything else goes through the testbed's gunicorn and Celery worker.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from bench.model_probe import rss_mib
from bench.testbed import Testbed
from inference.ml.training import default_datasets_root
from stack import PYTHON, REPO_ROOT

SAMPLES = REPO_ROOT / "samples"
# The committed sample each model's study would carry: one from the model's own data set, since
# its input check refuses images from other sources (a 28 px PneumoniaMNIST film is not a
# 224 px COVID-19 database radiograph).
SAMPLE_FOR = {
    "cxr-pneumonia": "cxr-normal-1.png",
    "us-breast": "us-breast-benign-1.png",
    "fundus-dr-grade": "fundus-grade0-1.png",
    "smear-malaria": "malaria-uninfected-1.png",
    "smear-cell-type": "smear-lymphocyte-1.jpg",
    "derm-melanoma": "derm-nv-1.jpg",
}


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


def sample_image(card: dict, datasets_root: Path | None = None) -> Path:
    """A real image of the kind the model reads: its committed sample, else a validation image of its data set.

    Models whose data set has no redistributable sample in the repository (licence unverified or
    mixed) are measured on their first validation image, read in place, when the data sets are present.
    """
    name = SAMPLE_FOR.get(card["name"])
    if name and (SAMPLES / name).exists():
        return SAMPLES / name
    root = datasets_root or default_datasets_root()
    dataset = card.get("dataset", {})
    folder = root / dataset.get("path", "")
    listed = dataset.get("validation_files")
    if dataset.get("path") and folder.is_dir():
        if listed:
            candidates = [path for path in sorted(folder.glob("*/*/*")) if f"{path.parent.name}/{path.name}" in listed]
        else:
            candidates = sorted((folder / "val").glob("*/*"))
        if candidates:
            return candidates[0]
    # Another kind of image would be refused by the model's input check and measure nothing.
    raise SystemExit(
        f"No image of the kind {card['name']} reads: add a sample to {SAMPLES} or provide its data set in {root}."
    )


def distinct_images(source: Path, count: int) -> list[bytes]:
    """``count`` different files made from one real sample image (two pixels differ).

    They keep the sample's format: a smear or dermoscopy camera sends JPEG, and a PNG of
    the same picture costs several times as long to decode.
    """
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


def latency_summary(latencies: list[float]) -> dict:
    return {
        "samples": len(latencies),
        "p50_ms": percentile(latencies, 0.5),
        "p95_ms": percentile(latencies, 0.95),
        "mean_ms": statistics.fmean(latencies),
        "max_ms": max(latencies),
    }


def pipeline(bed: Testbed, studies: list[str], images: list[bytes], *, series: bool = False) -> dict:
    """A burst of uploads over many studies from several senders, timed until every prediction
    succeeded (the studies are registered beforehand, as the RIS would have done).

    One image per request, or with ``series`` each study's images in one request.
    """
    ids: list[str] = []
    per_study = max(1, len(images) // len(studies))

    def send(index: int):
        study = studies[min(index // per_study, len(studies) - 1)]
        if series:
            return bed.upload_series(study, images[index : index + per_study], f"series-{index}")
        return bed.upload(study, images[index], f"burst-{index}")

    requests = range(0, len(images), per_study) if series else range(len(images))

    web_pids = bed.web.child_pids()
    worker_pids = [pid for process in bed.processes for pid in process.child_pids()]
    web_cpu, worker_cpu = cpu_seconds(web_pids), cpu_seconds(worker_pids)
    started = time.time()
    with ThreadPoolExecutor(bed.args.uploaders) as pool:
        for _, batch in pool.map(send, requests):
            ids += batch
    uploaded = time.time()
    rows = bed.wait_all(ids, timeout=900)
    finished = max(at for _, at, _ in rows.values())
    web_cpu, worker_cpu = cpu_seconds(web_pids) - web_cpu, cpu_seconds(worker_pids) - worker_cpu
    rows = bed.wait_all(ids, heatmaps=True, timeout=900)
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


def idle_latency(bed: Testbed, study: str, images: list[bytes]) -> dict:
    latencies, request_ms, to_claim_ms, claim_to_result_ms = [], [], [], []
    for index, data in enumerate(images):
        sent, ids = bed.upload(study, data, f"idle-{index}.png")
        answered = time.time()
        rows = bed.wait_all(ids, timeout=60)
        finished = max(at for _, at, _ in rows.values())
        latencies.append((finished - sent) * 1000)
        [(claimed,)] = bed.db.rows(
            "SELECT extract(epoch from min(started_at)) FROM inference_prediction WHERE id::text = ANY(%s)", (ids,)
        )
        request_ms.append((answered - sent) * 1000)
        to_claim_ms.append((float(claimed) - answered) * 1000)
        claim_to_result_ms.append((finished - float(claimed)) * 1000)
        bed.wait_all(ids, heatmaps=True, timeout=60)  # idle: nothing else in flight
        time.sleep(0.1)
    return {
        **latency_summary(latencies),
        "p50_upload_request_ms": percentile(request_ms, 0.5),
        "p50_response_to_claim_ms": percentile(to_claim_ms, 0.5),
        "p50_claim_to_result_ms": percentile(claim_to_result_ms, 0.5),
    }


def concurrent_latency(bed: Testbed, studies: list[str], images: list[bytes]) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    senders = bed.args.latency_uploaders
    per_sender = len(images) // senders

    def sender(number: int) -> None:
        for index in range(per_sender):
            position = number * per_sender + index
            sent, ids = bed.upload(studies[number], images[position], f"conc-{position}.png")
            rows = bed.wait_all(ids, timeout=120)
            with lock:
                latencies.append((max(at for _, at, _ in rows.values()) - sent) * 1000)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latency_summary(latencies)


def drain(bed: Testbed, studies: list[str], images: list[bytes], name: str) -> dict:
    """The worker alone: predictions queued while no worker runs, then drained by one worker.

    Timed from its first claim to its last result, so it shows how close the worker itself
    comes to the model's ceiling when the web tier is not competing for the same two cores.
    """
    ids: list[str] = []
    per_study = max(1, len(images) // len(studies))
    with ThreadPoolExecutor(bed.args.uploaders) as pool:
        for _, batch in pool.map(
            lambda i: bed.upload(studies[min(i // per_study, len(studies) - 1)], images[i], f"drain-{i}.png"),
            range(len(images)),
        ):
            ids += batch
    bed.start_worker(f"bench-drain-{name}")
    bed.wait_all(ids, timeout=900)
    [(first, last)] = bed.db.rows(
        "SELECT extract(epoch from min(started_at)), extract(epoch from max(finished_at)) "
        "FROM inference_prediction WHERE id::text = ANY(%s)",
        (ids,),
    )
    bed.stop_workers()
    seconds = float(last) - float(first)
    return {"predictions": len(ids), "seconds": seconds, "images_per_second": len(ids) / seconds}


def naive_baseline(bed: Testbed, card: dict, image_path: Path) -> dict:
    """The prototype's way, per request: load the model and predict. Once alone, then on every core."""
    args = bed.args
    naive = probe(
        "naive",
        card["_dir"],
        str(image_path),
        "--samples",
        str(args.naive_samples),
        "--warm-samples",
        str(args.naive_warm_samples),
    )
    # The pipeline uses every core, so the baseline does too: the prototype under a web server
    # with one process per core, all loading and predicting at once.
    processes = os.cpu_count() or 1
    print(f"[{card['name']}] naive baseline, {processes} processes at once ...", flush=True)
    with ThreadPoolExecutor(processes) as pool:
        parallel = list(
            pool.map(
                lambda _: probe(
                    "naive", card["_dir"], str(image_path), "--samples", str(args.naive_samples), "--warm-samples", "0"
                ),
                range(processes),
            )
        )
    naive["machine_processes"] = processes
    naive["machine_images_per_second"] = sum(p["load_and_predict_per_request_images_per_second"] for p in parallel)
    return naive


def model(bed: Testbed, card: dict, role: str) -> dict:
    """Every measurement of one model, its worker the only one running."""
    args = bed.args
    name = card["name"]
    print(f"[{name}] raw forward pass ...", flush=True)
    forward = probe("forward", card["_dir"], "--batch-sizes", args.forward_batch_sizes)
    print(f"[{name}] naive baseline ...", flush=True)
    image_path = sample_image(card)
    naive = naive_baseline(bed, card, image_path)

    bed.db.activate_only([name])
    worker = bed.start_worker(f"bench-{name}")
    try:
        study = bed.new_study(card)
        burst_studies = [bed.new_study(card) for _ in range(max(1, args.uploads // args.images_per_study))]
        sender_studies = [bed.new_study(card) for _ in range(args.latency_uploaders)]
        total = 2 * args.uploads + args.latency_samples + args.concurrent_samples + args.drain_uploads + 1
        images = distinct_images(image_path, total)
        bed.wait_all(bed.upload(study, images[0], "warm.png")[1], heatmaps=True, timeout=120)
        images = images[1:]
        print(f"[{name}] pipeline burst of {args.uploads} uploads ...", flush=True)
        burst = pipeline(bed, burst_studies, images[: args.uploads])
        images = images[args.uploads :]
        print(f"[{name}] pipeline burst of {args.uploads} uploads, one request per study ...", flush=True)
        series_studies = [bed.new_study(card) for _ in burst_studies]
        series = pipeline(bed, series_studies, images[: args.uploads], series=True)
        images = images[args.uploads :]
        print(f"[{name}] idle latency ...", flush=True)
        idle = idle_latency(bed, study, images[: args.latency_samples])
        images = images[args.latency_samples :]
        print(f"[{name}] latency with {args.latency_uploaders} concurrent uploaders ...", flush=True)
        concurrent = concurrent_latency(bed, sender_studies, images[: args.concurrent_samples])
        worker.stop(timeout=20)
        print(f"[{name}] queue drain: {args.drain_uploads} uploads queued, then one worker ...", flush=True)
        drain_studies = [bed.new_study(card) for _ in range(max(1, args.drain_uploads // args.images_per_study))]
        drained = drain(bed, drain_studies, images[args.concurrent_samples :], name)
    finally:
        bed.stop_workers()
    return {
        "role": role,
        "parameters": card["_cost"]["parameters"],
        "multiply_adds": card["_cost"]["multiply_adds"],
        "input_size": card["input_size"],
        "color_mode": card["color_mode"],
        "upload_image": f"{image_path.name} (distinct copies in its own format)",
        "forward": forward,
        "naive": naive,
        "pipeline": burst,
        "pipeline_series": series,
        "latency_idle": idle,
        "latency_concurrent": concurrent,
        "drain": drained,
    }


def memory(bed: Testbed, cards: list[dict]) -> dict:
    """Resident memory of a worker's pool process with every shipped model loaded and warmed."""
    bed.db.activate_only([card["name"] for card in cards])
    worker = bed.start_worker("bench-memory")
    try:
        children = worker.child_pids()
        return {
            "models_loaded": len(cards),
            "pool_process_rss_mib": sum(rss_mib(pid) for pid in children),
            "parent_process_rss_mib": rss_mib(worker.process.pid),
        }
    finally:
        bed.stop_workers()
