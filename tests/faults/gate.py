"""A barrier the fault tests control: the gated test model's forward pass waits while it is closed.

The gated model (``gate_layer.py``) holds every forward pass until the file ``open`` exists in
the gate's directory, and leaves a file ``entered-<pid>`` there each time a pool process reaches
the barrier. So a test knows, without guessing how fast a batch runs, that a worker has a batch
claimed and inside the forward pass, and how many worker processes do.
"""

import contextlib
from pathlib import Path

from stack.polling import wait_until


class Gate:
    def __init__(self, directory: Path):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.open()

    def open(self) -> None:
        (self.directory / "open").touch()

    def close(self) -> None:
        """Hold every forward pass from now on; forget which processes reached the barrier before."""
        (self.directory / "open").unlink(missing_ok=True)
        for entered in self.directory.glob("entered-*"):
            entered.unlink(missing_ok=True)

    @contextlib.contextmanager
    def closed(self):
        self.close()
        try:
            yield self
        finally:
            self.open()

    def entered_pids(self) -> set[int]:
        return {int(path.name.removeprefix("entered-")) for path in self.directory.glob("entered-*")}

    def wait_entered(self, processes: int, *, timeout: float = 120, message: str = "") -> set[int]:
        """Wait until ``processes`` worker processes are held at the closed gate, each with a batch."""

        def held() -> set[int] | None:
            pids = self.entered_pids()
            return pids if len(pids) >= processes else None

        return wait_until(
            held,
            timeout=timeout,
            interval=0.05,
            message=message or f"{processes} worker process(es) at the gate",
        )
