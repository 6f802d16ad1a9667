"""Redis restarted with an empty store while predictions are queued loses nothing."""

import pytest

from stack.polling import wait_until
from tests.faults.helpers import upload_each

pytestmark = pytest.mark.worker


def test_redis_flushed_and_restarted_with_predictions_queued_loses_nothing(fault_stack):
    stack = fault_stack
    study = stack.api.create_study(patient=stack.patient, modality="CR")
    # No worker is running: the tasks wait in Redis.
    ids = upload_each(stack, study, 12, seed=2000)
    client = stack.redis.client()
    assert client.llen("gpu") >= len(ids)

    client.flushall()
    stack.redis.stop()
    stack.redis.start()
    assert stack.redis.client().dbsize() == 0  # every task is gone

    stack.worker("after-flush", beat=True)
    wait_until(lambda: stack.all_succeeded(ids), timeout=120, interval=0.5, message=stack.diagnostics())
    # The heatmaps follow as their own tasks, sent after the second opinions.
    wait_until(lambda: all(row["heatmap"] for row in stack.predictions(ids)), timeout=120, message=stack.diagnostics())
