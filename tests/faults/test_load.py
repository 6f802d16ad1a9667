"""A bounded burst of concurrent good and bad uploads to gunicorn on loopback: no 5xx, nothing lost."""

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from stack.api import png_bytes
from stack.polling import wait_until

pytestmark = pytest.mark.worker

GOOD = 48
UPLOADERS = 8


def bad_files() -> list[tuple[str, bytes, str]]:
    valid = png_bytes(1)
    huge = io.BytesIO()
    Image.fromarray(np.zeros((7000, 7000), dtype=np.uint8)).save(huge, format="PNG")  # 49 Mpx: over the limit
    kinds = [
        ("notes.png", b"this is not an image", "image/png"),
        ("truncated.png", valid[: len(valid) // 3], "image/png"),
        ("empty.png", b"", "image/png"),
        ("bomb.png", huge.getvalue(), "image/png"),
    ]
    return [(f"{n}-{name}", data, kind) for n in range(4) for name, data, kind in kinds]


def test_a_burst_of_concurrent_good_and_bad_uploads(fault_stack):
    stack = fault_stack
    study = stack.api.create_study(patient=stack.patient, modality="CR")
    stack.worker("load", beat=True)
    good = [("good", [(f"good-{n}.png", png_bytes(5000 + n), "image/png")]) for n in range(GOOD)]
    bad = [("bad", [file]) for file in bad_files()]
    jobs = [job for pair in zip(good, bad + [None] * len(good), strict=False) for job in pair if job]

    with ThreadPoolExecutor(UPLOADERS) as pool:
        results = list(pool.map(lambda job: (job[0], *stack.api.upload(study, job[1])), jobs))

    assert len(results) == GOOD + len(bad)
    server_errors = [(kind, status, body) for kind, status, body in results if status >= 500]
    assert not server_errors, server_errors
    assert {status for kind, status, _ in results if kind == "good"} == {201}
    rejected = [body for kind, status, body in results if kind == "bad"]
    assert all(body["error"]["code"] == "image_rejected" for body in rejected), rejected
    accepted = [p["id"] for kind, _, body in results if kind == "good" for p in body["images"][0]["predictions"]]
    assert len(accepted) == GOOD
    wait_until(lambda: stack.all_succeeded(accepted), timeout=120, interval=0.5, message=stack.diagnostics())
