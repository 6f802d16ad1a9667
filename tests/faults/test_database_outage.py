"""PostgreSQL briefly down during uploads: 503s, never a 500, and nothing accepted is lost."""

import threading
import time

import pytest

from stack.api import png_bytes
from stack.polling import wait_until

pytestmark = pytest.mark.worker

# Enough accepted uploads before the outage that the recovery has real work to finish.
ACCEPTED_BEFORE_OUTAGE = 12
# A cap so that a test that has gone wrong cannot upload for ever.
MAX_REQUESTS_PER_UPLOADER = 1000


def test_postgres_briefly_down_during_uploads(fault_stack):
    stack = fault_stack
    study = stack.api.create_study(patient=stack.patient, modality="CR")
    stack.worker("db-outage", beat=True)
    results: list[tuple[int, list[str], dict | str | None]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def uploader(offset: int) -> None:
        for index in range(MAX_REQUESTS_PER_UPLOADER):
            if stop.is_set():
                return
            seed = 3000 + offset * 10_000 + index
            status, body = stack.api.upload(study, [(f"outage-{seed}.png", png_bytes(seed), "image/png")])
            ids = [p["id"] for p in body["images"][0]["predictions"]] if status == 201 else []
            with lock:
                results.append((status, ids, body if status != 201 else None))
            time.sleep(0.05)

    def count(status: int) -> int:
        with lock:
            return sum(1 for code, _, _ in results if code == status)

    threads = [threading.Thread(target=uploader, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    try:
        # Each step waits for what the uploads saw, not for a number of seconds.
        wait_until(lambda: count(201) >= ACCEPTED_BEFORE_OUTAGE, timeout=120, message="uploads accepted")
        stack.postgres.stop()
        try:
            wait_until(lambda: count(503) >= 2, timeout=120, message="uploads answered 503 during the outage")
        finally:
            stack.postgres.start()
        accepted_before_restart = count(201)
        wait_until(lambda: count(201) > accepted_before_restart, timeout=120, message="an upload accepted again")
    finally:
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
    assert len(accepted) > ACCEPTED_BEFORE_OUTAGE
    wait_until(lambda: stack.all_succeeded(accepted), timeout=120, interval=0.5, message=stack.diagnostics())
