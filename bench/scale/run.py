"""Scale benchmark: every list, search, worklist, dashboard and QIDO request at hospital scale.

    nice -n 5 python -m bench.scale              # 50k patients, 100k studies, 300k predictions, 500k audit rows
    nice -n 5 python -m bench.scale --scale 10   # ten times the history, the same backlog
    nice -n 5 python -m bench.scale --scale 10 --only worklist --keep   # the worklist alone, database kept
    nice -n 5 python -m bench.scale --scale 10 --only "qido studies" --reuse   # time the kept one again

Seeds a dedicated PostgreSQL database on the machine's server with set-based SQL (about a minute
at scale 1), serves it with gunicorn on a free loopback port (production-like settings, DEBUG off),
counts each request's SQL statements in a Django process (at two page sizes for the API lists),
then times each request sequentially after a warm-up: API and DICOMweb with a token, pages with a
session. Prints p50/p95 and PASS/FAIL against the target, writes the results as JSON and drops the
database unless ``--keep``. ``--reuse`` times an already seeded database again (after migrating it),
``--only`` picks requests by a substring of their names (case-insensitive; repeat it, or separate
substrings by commas): a run at ten times the size seeds for about fifteen minutes, and timing a
few requests is then quick. A value that is part of a name whole is not split at its commas, so
``--only "QIDO studies, modality"`` picks that request alone.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2

from bench.scale.endpoints import ENDPOINTS, fill
from stack import PYTHON, REPO_ROOT
from stack.processes import app_env, make_root, manage, start_gunicorn

TARGET_P95_MS = 50.0


def admin_sql(url: str, statement: str) -> None:
    """CREATE/DROP DATABASE, which cannot run inside a transaction."""
    connection = psycopg2.connect(url, connect_timeout=5)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def django_json(env: dict, module: str, *args: str, stdin: str = "", timeout: float = 3600) -> dict:
    result = subprocess.run(
        [PYTHON, "-m", module, *args],
        cwd=REPO_ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    sys.stdout.write("".join(line + "\n" for line in result.stdout.splitlines() if line.startswith("[")))
    if result.returncode:
        raise RuntimeError(f"{module} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def request_ms(base: str, path: str, headers: dict) -> tuple[int, float]:
    request = urllib.request.Request(f"{base}{path}", headers=headers)  # noqa: S310 - loopback only
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        exc.read()
        status = exc.code
    return status, (time.perf_counter() - started) * 1000


def credentials(who: str, seeded: dict) -> dict:
    kind, role = who.split(":")
    if kind == "page":
        return {"Cookie": f"sessionid={seeded['sessions'][role]}"}
    accept = "application/dicom+json" if kind == "dicomweb" else "application/json"
    return {"Authorization": f"Bearer {seeded['tokens'][role]}", "Accept": accept}


def time_endpoint(base: str, path: str, headers: dict, *, samples: int, warmup: int) -> dict:
    statuses = set()
    for _ in range(warmup):
        statuses.add(request_ms(base, path, headers)[0])
    timings = []
    for _ in range(samples):
        status, ms = request_ms(base, path, headers)
        statuses.add(status)
        timings.append(ms)
    return {
        "p50_ms": round(percentile(timings, 0.5), 1),
        "p95_ms": round(percentile(timings, 0.95), 1),
        "max_ms": round(max(timings), 1),
        "statuses": sorted(statuses),
    }


def ids_for(seeded: dict) -> dict:
    now = datetime.datetime.now(datetime.UTC)
    return {
        **seeded["ids"],
        "week_ago": (now - datetime.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "week_ago_date": (now - datetime.timedelta(days=7)).strftime("%Y-%m-%d"),
        "month_ago_dicom": (now - datetime.timedelta(days=30)).strftime("%Y%m%d"),
    }


def only_terms(values: list[str]) -> list[str]:
    """The lower-case substrings ``--only`` asked for. Request names have commas of their own
    ("QIDO studies, modality"): a value found whole in a name is one substring, any other is
    split at its commas ("worklist,QIDO")."""
    names = [name.lower() for name, _, _ in ENDPOINTS]
    terms = []
    for value in values:
        value = value.strip().lower()
        if any(value in name for name in names):
            terms.append(value)
        else:
            terms.extend(part.strip() for part in value.split(",") if part.strip())
    return terms


def table(results: dict) -> str:
    lines = [
        f"{'request':<42} {'p50 ms':>8} {'p95 ms':>8} {'SQL ms':>7} {'queries':>8} {'q@10/100':>9}  result",
        "-" * 94,
    ]
    for name, row in results["endpoints"].items():
        by_size = row.get("queries_by_page_size")
        sizes = "/".join(str(v) for v in by_size.values()) if by_size else ""
        verdict = "PASS" if row["pass"] else "FAIL"
        if row["statuses"] != [200] and row["statuses"] != [204]:
            verdict += f" (HTTP {row['statuses']})"
        lines.append(
            f"{name:<42} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {row.get('db_ms', '-'):>7} "
            f"{row.get('queries', '-'):>8} {sizes:>9}  {verdict}"
        )
    passed = sum(row["pass"] for row in results["endpoints"].values())
    lines.append("-" * 94)
    lines.append(f"{passed} of {len(results['endpoints'])} requests at p95 < {TARGET_P95_MS:.0f} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scale", type=float, default=1, help="multiply the history (not the backlog) by this, e.g. 10"
    )
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--database", default=None, help="database name (default medportal_scale[_x<scale>])")
    parser.add_argument("--postgres-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--keep", action="store_true", help="leave the database in place afterwards")
    parser.add_argument("--reuse", action="store_true", help="time a database seeded by an earlier --keep run")
    parser.add_argument(
        "--only", action="append", default=[], help="substrings of the request names to time (repeatable)"
    )
    parser.add_argument("--output", type=Path, default=None, help="JSON results (default bench/scale-results.json)")
    args = parser.parse_args(argv)
    wanted = only_terms(args.only)
    chosen = [e for e in ENDPOINTS if not wanted or any(w in e[0].lower() for w in wanted)]
    if not chosen:
        parser.error(f"--only {', '.join(args.only)!r} names none of the requests (see bench/scale/endpoints.py)")

    suffix = "" if args.scale == 1 else f"_x{args.scale:g}".replace(".", "_")
    database = args.database or f"medportal_scale{suffix}"
    admin_url = f"{args.postgres_url}/postgres"
    database_url = f"{args.postgres_url}/{database}"
    output = args.output or REPO_ROOT / "bench" / (f"scale-results{suffix.replace('_', '-')}.json")
    root = make_root("medportal-scale-")
    state_file = REPO_ROOT / "var" / f"{database}.json"
    env = app_env(database_url=database_url, broker_url="memory://", root=root)
    if args.reuse:
        # The media folder of the seeding run holds the files the DICOM requests read.
        env["DJANGO_MEDIA_ROOT"] = json.loads(state_file.read_text())["media_root"]

    results: dict = {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "scale": args.scale,
        "target_p95_ms": TARGET_P95_MS,
        "machine": {"cpus": os.cpu_count(), "nice": os.nice(0), "load_average": os.getloadavg()},
        "web_workers": args.web_workers,
        "samples": args.samples,
        "warmup": args.warmup,
    }
    web = None
    try:
        if not args.reuse:
            admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{database}"')
            admin_sql(admin_url, f'CREATE DATABASE "{database}"')
        started = time.monotonic()
        print(f"[setup] migrating {database} …", flush=True)
        manage(env, "migrate", "--noinput", timeout=1800)
        results["migrate_seconds"] = round(time.monotonic() - started, 1)
        if args.reuse:
            seeded = json.loads(state_file.read_text())["seeded"]
            seeded.update(django_json(env, "bench.scale.seed", "--sessions"))
        else:
            started = time.monotonic()
            seeded = django_json(env, "bench.scale.seed", "--scale", str(args.scale))
            results["seed_seconds"] = round(time.monotonic() - started, 1)
            state_file.parent.mkdir(exist_ok=True)
            state_file.write_text(json.dumps({"seeded": seeded, "media_root": env["DJANGO_MEDIA_ROOT"]}))
        results["rows"] = seeded["counts"]
        print(f"[setup] rows: {json.dumps(seeded['counts'])}", flush=True)
        ids = ids_for(seeded)

        print("[queries] counting SQL statements per request …", flush=True)
        spec = {"ids": ids, "tokens": seeded["tokens"], "sessions": seeded["sessions"], "only": wanted}
        counts = django_json(env, "bench.scale.queries", stdin=json.dumps(spec))

        web, base = start_gunicorn(env, root, workers=args.web_workers)
        results["endpoints"] = {}
        for name, who, template in chosen:
            path = fill(template, ids)
            row = {"path": path, **time_endpoint(
                base, path, credentials(who, seeded), samples=args.samples, warmup=args.warmup
            )}  # fmt: skip
            row.update({k: v for k, v in counts.get(name, {}).items() if k != "status"})
            ok_status = row["statuses"] in ([200], [204])
            row["pass"] = ok_status and row["p95_ms"] < TARGET_P95_MS
            results["endpoints"][name] = row
            print(
                f"[time] {name:<42} p50 {row['p50_ms']:7.1f}  p95 {row['p95_ms']:7.1f}  "
                f"queries {row.get('queries', '-')}  {'PASS' if row['pass'] else 'FAIL'}",
                flush=True,
            )
    finally:
        if web is not None:
            web.stop()
        if not args.keep:
            try:
                admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                state_file.unlink(missing_ok=True)
            except Exception as exc:  # the results are still worth writing
                print(f"[teardown] could not drop {database}: {exc}", flush=True)
    results["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    print()
    print(table(results))
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nResults written to {output}")
    sys.exit(0 if all(row["pass"] for row in results["endpoints"].values()) else 1)
