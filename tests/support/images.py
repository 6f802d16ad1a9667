"""Image bytes made on the fly, and a look at what storage holds, for upload tests."""

import io
import struct
import zlib

from django.core.files.storage import default_storage
from PIL import Image as PILImage


def png_bytes(width: int = 16, height: int = 16, mode: str = "L", color: int = 128) -> bytes:
    buffer = io.BytesIO()
    PILImage.new(mode, (width, height), color=color).save(buffer, format="PNG")
    return buffer.getvalue()


def truncated_png() -> bytes:
    noise = PILImage.frombytes("L", (64, 64), bytes(range(256)) * 16)
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    data = buffer.getvalue()
    return data[: len(data) // 2]


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression-bomb shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def stored_files() -> set[str]:
    found: set[str] = set()

    def walk(path: str) -> None:
        dirs, files = default_storage.listdir(path)
        found.update(f"{path}/{f}".lstrip("/") for f in files)
        for d in dirs:
            walk(f"{path}/{d}".lstrip("/"))

    if default_storage.exists(""):
        walk("")
    return found
