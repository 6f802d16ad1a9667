"""Content-addressed file storage on top of Django's storage API."""

import hashlib
from dataclasses import dataclass
from pathlib import PurePath
from typing import BinaryIO

from django.core.files.base import ContentFile, File
from django.core.files.storage import Storage, default_storage

from imaging.models import Image


@dataclass(frozen=True)
class StoredBlob:
    name: str
    created: bool  # False when identical bytes were already stored


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_name(prefix: str, sha256: str, extension: str) -> str:
    # Never derived from the uploader's filename: no path can be smuggled in.
    return f"{prefix}/{sha256[:2]}/{sha256}{extension}"


def blob_store(
    *, name: str, data: bytes | None = None, file: BinaryIO | None = None, storage: Storage | None = None
) -> StoredBlob:
    """Store ``data``, or what ``file`` holds from its start, under ``name`` unless that content is already there.

    A file is copied in chunks, byte for byte, never held in memory whole.
    """
    storage = storage or default_storage
    if storage.exists(name):
        return StoredBlob(name=name, created=False)
    # Wrapped: a temporary upload handed over as is would be moved by the storage, not copied.
    content = ContentFile(data, name=name) if file is None else File(file, name=name)
    saved = storage.save(name, content)
    if saved != name:
        # Another process stored the same content a moment earlier; keep theirs.
        storage.delete(saved)
        return StoredBlob(name=name, created=False)
    return StoredBlob(name=name, created=True)


def blob_read(name: str, *, storage: Storage | None = None) -> bytes:
    storage = storage or default_storage
    with storage.open(name, "rb") as handle:
        return handle.read()


def blob_discard(blob: StoredBlob) -> None:
    """Remove a file an upload that failed stored, unless an image already refers to it."""
    if blob.created and not Image.objects.filter(file=blob.name).exists():
        default_storage.delete(blob.name)


def display_filename(filename: str) -> str:
    """The client's filename, kept for display only: any directory part it sent is dropped."""
    return PurePath((filename or "").replace("\\", "/")).name[:255]
