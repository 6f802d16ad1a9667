"""Seed a fresh database for a benchmark or fault-test stack; prints one JSON line.

Reads {"models": [{"weights": path, "card": {...}, "queue": optional}, {"zoo": true}]} on stdin.
"""

import json
import sys
import uuid

import django


def main() -> None:
    django.setup()
    # The models behind these services can only be imported once Django is set up.
    from accounts.roles import Role  # noqa: PLC0415
    from accounts.services import user_create  # noqa: PLC0415
    from inference.services import aimodel_register, aimodels_register_shipped  # noqa: PLC0415
    from patients.services import patient_create  # noqa: PLC0415
    from tokens.services import api_token_create  # noqa: PLC0415

    spec = json.loads(sys.stdin.read() or "{}")
    suffix = uuid.uuid4().hex[:8]
    user = user_create(username=f"bench-{suffix}", password=uuid.uuid4().hex, role=Role.STAFF)
    _, key = api_token_create(name="benchmark", user=user)
    patient = patient_create(mrn=f"BENCH-{suffix}", family_name="Benchmark", given_name="Burst")
    models = []
    for entry in spec.get("models", []):
        if entry.get("zoo"):
            registered = aimodels_register_shipped()
        else:
            registered = [aimodel_register(weights_path=entry["weights"], card=entry["card"], queue=entry.get("queue"))]
        models += [
            {"id": str(m.id), "name": m.name, "queue": m.queue, "modalities": m.modalities, "body_part": m.body_part}
            for m in registered
        ]
    print(json.dumps({"token": key, "patient": str(patient.id), "models": models}))


if __name__ == "__main__":
    main()
