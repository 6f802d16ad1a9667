"""Count the SQL statements of each benchmark request, in a Django process on the same database.

Reads {"ids": …, "tokens": …, "sessions": …} on stdin and prints one JSON line:
{name: {"queries": n, "db_ms": ms, "queries_by_page_size": {size: n}}}, where db_ms is the time the
database took for the request's statements (a second opinion on a busy machine). The requests go
through Django's test client with the same credentials the timed requests use: the same code runs.
"""

import json
import sys

import django
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench.scale.endpoints import ENDPOINTS, LIST_PAGE_SIZES, fill, is_api_list, with_page_size


def main() -> None:
    django.setup()

    spec = json.loads(sys.stdin.read())
    results = {}
    wanted = spec.get("only") or []
    for name, who, template in ENDPOINTS:
        if wanted and not any(w in name.lower() for w in wanted):
            continue
        kind, role = who.split(":")
        client = Client(HTTP_HOST="127.0.0.1")
        headers = {}
        if kind == "page":
            client.cookies[settings.SESSION_COOKIE_NAME] = spec["sessions"][role]
        else:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {spec['tokens'][role]}"
        path = fill(template, spec["ids"])

        def count(url: str) -> tuple[int, int, float]:
            with CaptureQueriesContext(connection) as captured:
                response = client.get(url, **headers)  # noqa: B023 - used inside the loop only
            seconds = sum(float(query["time"]) for query in captured.captured_queries)
            return response.status_code, len(captured.captured_queries), seconds * 1000

        count(path)  # warm: connection, roles and the session are read once
        status, queries, db_ms = count(path)
        entry = {"status": status, "queries": queries, "db_ms": round(db_ms, 1)}
        if is_api_list(path):
            entry["queries_by_page_size"] = {size: count(with_page_size(path, size))[1] for size in LIST_PAGE_SIZES}
        results[name] = entry
    print(json.dumps(results))


if __name__ == "__main__":
    main()
