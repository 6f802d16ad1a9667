"""Scale benchmark: list, search, worklist, dashboard and QIDO latency at hospital scale (see run.py)."""
