"""Two worker processes share one queue with no double work (SELECT ... FOR UPDATE SKIP LOCKED)."""

import collections

import pytest

from stack.api import png_bytes
from stack.polling import wait_until
from stack.processes import succeeded_log_lines

pytestmark = pytest.mark.worker


def test_two_workers_share_the_queue_and_never_do_the_same_work(fault_stack):
    stack = fault_stack
    # Nothing here waits for the sweeper, so the task time limit need not be short: a batch held at
    # the gate is never cut off by it while the other worker, on a loaded machine, claims its own.
    small_batches = {"MEDPORTAL_BATCH_SIZE": "4", "MEDPORTAL_DRAIN_SECONDS": "1", "MEDPORTAL_TASK_TIME_LIMIT": "60"}
    first = stack.worker("share-a", **small_batches)
    second = stack.worker("share-b", **small_batches)
    study = stack.api.create_study(patient=stack.patient, modality="DX")

    # One request with 24 files: 24 tasks reach the broker at once and both workers race for them.
    # DX goes to the gated model: with the gate closed, the first worker to claim a batch is held
    # in its forward pass, so the other one has to take work too, however fast a batch runs.
    files = [(f"share-{n}.png", png_bytes(7000 + n, 128), "image/png") for n in range(24)]
    with stack.gate.closed():
        status, body = stack.api.upload(study, files)
        assert status == 201, body
        holding = stack.gate.wait_entered(2, message=f"both workers holding a batch\n{stack.diagnostics()}")
    ids = [p["id"] for image in body["images"] for p in image["predictions"]]
    assert len(ids) == 24
    assert holding <= set(first.child_pids()) | set(second.child_pids())

    wait_until(lambda: stack.all_succeeded(ids), timeout=120, interval=0.5, message=stack.diagnostics())

    written = collections.Counter(succeeded_log_lines(first, second))
    assert set(written) == set(ids) and set(written.values()) == {1}
    rows = stack.predictions(ids)
    assert {row["attempts"] for row in rows} == {1}
    by_worker = collections.Counter(row["worker_host"] for row in rows)
    assert len(by_worker) == 2, by_worker  # both processes did part of the work
    assert set(succeeded_log_lines(first)).isdisjoint(succeeded_log_lines(second))
