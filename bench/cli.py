"""The AI pipeline benchmark: raw forward pass, pipeline throughput, naive baseline, latency, memory.

    python -m bench                      # lightest and heaviest shipped model
    python -m bench --models all         # every shipped model
    python -m bench --uploads 1000 --output bench/results.json

Everything runs in one go on this machine's PostgreSQL and Redis with real gunicorn and
``celery worker`` processes, so the ratios between the numbers hold on a noisy machine. The
benchmark uses a database of its own (created and dropped) and an empty Redis database index;
it never flushes anything it did not create.
"""

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

from bench import measurements
from bench.measurements import costs
from bench.report import report
from bench.testbed import Testbed, shipped_cards
from stack import REPO_ROOT


def parser() -> argparse.ArgumentParser:
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
    return parser


def choose_models(cards: list[dict], models: str, also: str) -> list[tuple[dict, str]]:
    """The cards to measure, with the role each plays in the report, lightest first."""
    # Light and heavy by the work one image costs (multiply-adds), which sets a model's run time;
    # the parameter count does not (a small input with a wide dense layer is big but cheap).
    by_size = sorted(cards, key=lambda c: c["_cost"]["multiply_adds"])
    if models == "light,heavy":
        chosen = [(by_size[0], "lightest")]
        if len(by_size) > 1:
            chosen.append((by_size[-1], "heaviest"))
    elif models == "all":
        chosen = [(c, "shipped") for c in by_size]
    else:
        wanted = models.split(",")
        chosen = [(c, "chosen") for c in by_size if c["name"] in wanted]

    for name in filter(None, also.split(",")):
        chosen += [(c, "extra") for c in by_size if c["name"] == name and all(c is not k for k, _ in chosen)]
    return chosen


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)

    cards = shipped_cards()
    if not cards:
        raise SystemExit("No shipped models in inference/zoo.")
    for card, cost in zip(cards, costs(cards).values(), strict=True):
        card["_cost"] = cost
    chosen = choose_models(cards, args.models, args.also)

    results: dict = {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "settings": {},
        "models": {},
        "shipped_models": {c["name"]: c["_cost"] for c in sorted(cards, key=lambda c: c["_cost"]["multiply_adds"])},
    }
    bed = Testbed(args)
    try:
        results["settings"] = bed.setup()
        for card, role in chosen:
            results["models"][card["name"]] = measurements.model(bed, card, role)
        print("[memory] worker with every shipped model loaded ...", flush=True)
        results["memory"] = measurements.memory(bed, cards)
    finally:
        bed.teardown()
    results["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    sys.exit(0 if report(results, args.output) else 1)


if __name__ == "__main__":
    main()
