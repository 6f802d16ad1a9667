"""A worker killed with SIGKILL in the middle of a batch loses nothing and duplicates nothing."""

import collections

import pytest

from stack.polling import wait_until
from stack.processes import succeeded_log_lines
from tests.faults.helpers import upload_each

pytestmark = pytest.mark.worker


def test_a_worker_killed_mid_batch_then_replaced_finishes_every_prediction_exactly_once(fault_stack):
    stack = fault_stack
    # DX chest studies go to the gated model: with the gate closed its forward pass waits, so the
    # batch is still open when the worker dies, however fast the machine.
    study = stack.api.create_study(patient=stack.patient, modality="DX")
    doomed = stack.worker("crash-a")
    with stack.gate.closed():
        ids = upload_each(stack, study, 24, seed=1000, size=128)
        stack.gate.wait_entered(1, message=f"no batch reached the forward pass\n{stack.diagnostics()}")
        doomed.kill()
    at_kill = collections.Counter(stack.statuses(ids).values())
    assert at_kill["running"] > 0, at_kill  # killed mid-batch, with work claimed and unfinished
    assert at_kill["succeeded"] == 0, at_kill

    # The replacement runs the sweeper (celery beat): the dead worker's claims go back to the queue
    # once past the time limit; its unacknowledged task also comes back from Redis, and finds nothing.
    replacement = stack.worker("crash-b", beat=True)
    wait_until(lambda: stack.all_succeeded(ids), timeout=120, interval=0.5, message=stack.diagnostics())

    written = collections.Counter(succeeded_log_lines(doomed, replacement))
    assert set(written) == set(ids)
    assert set(written.values()) == {1}, "a prediction was written twice"
    rows = stack.predictions(ids)
    interrupted = [row for row in rows if row["attempts"] == 2]
    assert len(interrupted) >= at_kill["running"]  # the interrupted batch ran again, once
    assert all(row["attempts"] in (1, 2) and row["error"] == "" for row in rows)
