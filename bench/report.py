"""The benchmark's report: the targets checked as PASS/FAIL, a table, and the results file."""

import json
from pathlib import Path

TARGET_NAIVE_RATIO = 20.0
TARGET_CEILING_SHARE = 0.5
TARGET_IDLE_P50_MS = 300.0
TARGET_CONCURRENT_P95_MS = 2000.0

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


def report(results: dict, output: Path) -> bool:
    """Check the targets, print the table and the PASS/FAIL lines, write ``output``; True if all pass."""
    checks = targets(results)
    results["targets"] = [{"pass": ok, "check": text} for ok, text in checks]

    print()
    print(table(results))
    print()
    for ok, text in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nResults written to {output}")
    return all(ok for ok, _ in checks)
