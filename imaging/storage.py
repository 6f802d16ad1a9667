"""Content-addressed file storage on top of Django's storage API."""

import hashlib
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, default_storage


@dataclass(frozen=True)
class StoredBlob:
    name: str
    created: bool  # False when identical bytes were already stored


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_name(prefix: str, sha256: str, extension: str) -> str:
    # Never derived from the uploader's filename: no path can be smuggled in.
    return f"{prefix}/{sha256[:2]}/{sha256}{extension}"


def blob_store(*, data: bytes, name: str, storage: Storage | None = None) -> StoredBlob:
    """Store ``data`` under ``name`` unless that content is already there."""
    storage = storage or default_storage
    if storage.exists(name):
        return StoredBlob(name=name, created=False)
    saved = storage.save(name, ContentFile(data))
    if saved != name:
        # Another process stored the same content a moment earlier; keep theirs.
        storage.delete(saved)
        return StoredBlob(name=name, created=False)
    return StoredBlob(name=name, created=True)


def blob_read(name: str, *, storage: Storage | None = None) -> bytes:
    storage = storage or default_storage
    with storage.open(name, "rb") as handle:
        return handle.read()
