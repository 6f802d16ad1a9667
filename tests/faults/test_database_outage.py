"""PostgreSQL down for a few seconds during uploads: 503s, never a 500, and nothing accepted is lost."""

import threading
import time

import pytest

from stack.api import png_bytes
from stack.polling import wait_until

pytestmark = pytest.mark.worker

MAX_REQUESTS_PER_UPLOADER = 150


def test_postgres_briefly_down_during_uploads(fault_stack):
    stack = fault_stack
    study = stack.api.create_study(patient=stack.patient, modality="CR")
    stack.worker("db-outage", beat=True)
    results: list[tuple[int, list[str], dict | str | None]] = []
    stop = threading.Event()

    def uploader(offset: int) -> None:
        for index in range(MAX_REQUESTS_PER_UPLOADER):
            if stop.is_set():
                return
            seed = 3000 + offset * 1000 + index
            status, body = stack.api.upload(study, [(f"outage-{seed}.png", png_bytes(seed), "image/png")])
            ids = [p["id"] for p in body["images"][0]["predictions"]] if status == 201 else []
            results.append((status, ids, body if status != 201 else None))
            time.sleep(0.05)

    threads = [threading.Thread(target=uploader, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        stack.postgres.stop()
        time.sleep(4)
    finally:
        stack.postgres.start()
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    codes = [status for status, _, _ in results]
    assert not [code for code in codes if code >= 500 and code != 503], codes
    unavailable = [body for status, _, body in results if status == 503]
    assert unavailable, "the outage was never seen by an upload"
    assert all(body["error"]["code"] == "database_unavailable" for body in unavailable)
    assert set(codes) <= {201, 503}
    accepted = [pid for status, ids, _ in results if status == 201 for pid in ids]
    assert len(accepted) > 10
    wait_until(lambda: stack.all_succeeded(accepted), timeout=75, interval=0.5, message=stack.diagnostics())
