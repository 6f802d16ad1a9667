"""Talking to the API over loopback, with the standard library only."""

import io
import json
import urllib.error
import urllib.request
import uuid

import numpy as np
from PIL import Image


def png_bytes(seed: int, size: int = 96) -> bytes:
    """A distinct, valid grayscale PNG (content-addressed storage would fold identical bytes into one image)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size, size), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(files: list[tuple[str, bytes, str]]) -> tuple[bytes, str]:
    boundary = uuid_hex()
    body = b"".join(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
        for name, data, content_type in files
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def uuid_hex() -> str:
    return uuid.uuid4().hex


class Api:
    """A minimal HTTP client for the API on loopback (standard library only)."""

    def __init__(self, base: str, token: str):
        self.base = base
        self.token = token

    def request(self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None):
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(f"{self.base}{path}", data=body, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback only
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode(errors="replace")
        return status, data

    def post_json(self, path: str, payload: dict):
        return self.request("POST", path, body=json.dumps(payload).encode(), content_type="application/json")

    def get(self, path: str):
        return self.request("GET", path)

    def create_study(self, *, patient: str, modality: str = "CR", body_part: str = "CHEST", **extra) -> str:
        status, data = self.post_json(
            "/api/v1/studies/",
            {
                "patient": patient,
                "accession_number": f"B-{uuid_hex()[:12]}",
                "modality": modality,
                "body_part": body_part,
                **extra,
            },
        )
        if status != 201:
            raise RuntimeError(f"Could not create a study: {status} {data}")
        return data["id"]

    def upload(self, study_id: str, files: list[tuple[str, bytes, str]]):
        body, content_type = multipart(files)
        return self.request("POST", f"/api/v1/studies/{study_id}/images/", body=body, content_type=content_type)
