"""PNG renderings of stored images (DICOM or not) for the browser."""

import io

from PIL import Image as PILImage
from PIL import ImageDraw

from imaging.dicom.pixels import PixelDecodeError
from imaging.models import Image
from imaging.pixels import image_pixels

# The largest rendering anyone may ask for (a thumbnail size or a full-resolution bound).
MAX_RENDER_SIZE = 4096


class NotAnImage(ValueError):
    """A non-image DICOM instance (SR, KOS, PR, waveform, PDF, RT...) has nothing to render."""

    def __init__(self, image: Image):
        super().__init__(
            f"This instance is not an image ({image.sop_class_name or 'no pixel data'}): it has nothing to "
            "render. Download it instead."
        )


def image_render_png(image: Image, *, max_size: int | None = None) -> bytes:
    """The image as the AI sees it (windowed, MONOCHROME1 inverted, middle frame), as PNG.

    ``max_size`` bounds the longer side, for thumbnails. Raises PixelDecodeError when the
    pixels cannot be decoded (``image.analysable`` is False then), NotAnImage for a non-image instance.
    """
    if not image.has_pixels:
        raise NotAnImage(image)
    picture = PILImage.fromarray(image_pixels(image))
    if max_size:
        picture.thumbnail((max_size, max_size), PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def image_display_png(image: Image, *, max_size: int | None = None) -> bytes:
    """The rendering, or a tile naming the reason when the pixels cannot be decoded.

    Raises NotAnImage for a non-image instance: its pages link to the file, never to a picture.
    """
    try:
        return image_render_png(image, max_size=max_size)
    except PixelDecodeError:
        reason = image.not_analysable_reason or "The pixels cannot be decoded."
        return placeholder_png(f"Cannot be displayed. {reason}", size=max_size or 256)


def placeholder_png(text: str, *, size: int = 256) -> bytes:
    """A grey tile saying why there is no picture, so a page never shows a broken image."""
    picture = PILImage.new("L", (size, size), color=64)
    draw = ImageDraw.Draw(picture)
    words, lines, line = text.split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if len(candidate) > 30 and line:
            lines.append(line)
            line = word
        else:
            line = candidate
    lines.append(line)
    for number, content in enumerate(lines[:8]):
        draw.text((10, 10 + 14 * number), content, fill=230)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


__all__ = ["NotAnImage", "PixelDecodeError", "image_render_png", "placeholder_png"]
