"""Decoding and limits for uploaded images, applied before anything is stored."""

import io
import warnings
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

# Pillow format -> (MIME type, file extension). Anything else is refused.
ACCEPTED_FORMATS = {"PNG": ("image/png", ".png"), "JPEG": ("image/jpeg", ".jpg")}


class ImageRejected(ValueError):
    """The upload is not an image we can accept; the message is shown to the user."""


class IdentityConflict(ImageRejected):
    """The file's patient or study does not match the record it would go into.

    The message names the existing record, for signed-in staff; a network peer is told only
    ``PEER_MESSAGE``, which reveals nothing about other patients or studies.
    """

    PEER_MESSAGE = "Patient or study does not match the archive; nothing stored."
    # When the instance is kept aside for an administrator (imaging.models.HeldInstance).
    HELD_PEER_MESSAGE = "Patient identity conflict; held for reconciliation."

    def __init__(self, message: str, *, reason: str = "study_mismatch", patient=None, study=None):
        super().__init__(message)
        self.reason = reason  # an imaging.models.HoldReason value
        self.patient = patient  # the patient on record it clashed with
        self.study = study


@dataclass(frozen=True)
class DecodedImage:
    content_type: str
    extension: str
    width: int
    height: int


def _pillow_open(data: bytes) -> PILImage.Image:
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below gives the clear message; Pillow's warning would only add noise.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            return PILImage.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageRejected("The file is not a PNG or JPEG image (or DICOM) that can be read.") from exc
    except PILImage.DecompressionBombError as exc:
        raise ImageRejected("The image has too many pixels.") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        # A header cut short makes Pillow fail before it can even tell the format.
        raise ImageRejected(f"The image is corrupt or truncated and cannot be decoded ({exc}).") from exc


def decode_image(data: bytes, *, max_bytes: int | None = None, max_pixels: int | None = None) -> DecodedImage:
    """Fully decode ``data`` and check it against the byte and pixel limits.

    The pixel count is checked from the header *before* decoding, so a small file
    that expands to gigabytes (a decompression bomb) is refused cheaply.
    """
    max_bytes = max_bytes or settings.MEDPORTAL_MAX_UPLOAD_BYTES
    max_pixels = max_pixels or settings.MEDPORTAL_MAX_IMAGE_PIXELS
    if len(data) == 0:
        raise ImageRejected("The file is empty.")
    if len(data) > max_bytes:
        raise ImageRejected(f"The file is {len(data):,} bytes; the limit is {max_bytes:,} bytes.")
    image = _pillow_open(data)
    if image.format not in ACCEPTED_FORMATS:
        raise ImageRejected(f"{image.format or 'This'} images are not accepted; upload PNG, JPEG or DICOM.")
    width, height = image.size
    pixel_limit_check(
        width=width,
        height=height,
        samples=len(image.getbands()),
        frames=getattr(image, "n_frames", 1),
        bytes_per_sample=_MODE_BYTES.get(image.mode, 1),
        max_pixels=max_pixels,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            image.load()
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as exc:
        raise ImageRejected(f"The image is corrupt or truncated and cannot be decoded ({exc}).") from exc
    content_type, extension = ACCEPTED_FORMATS[image.format]
    return DecodedImage(content_type=content_type, extension=extension, width=width, height=height)


def pixel_limit_check(
    *,
    width: int,
    height: int,
    samples: int = 1,
    frames: int = 1,
    bytes_per_sample: int = 1,
    max_pixels: int | None = None,
) -> None:
    """The pixel rule every image meets, whatever its format, checked from its header before decoding.

    A frame's pixel count (MEDPORTAL_MAX_IMAGE_PIXELS), and the decoded size, width x height x
    samples x frames x bytes per sample (MEDPORTAL_MAX_PIXEL_BYTES), so that neither colour,
    deep samples nor a thousand frames get around it.
    """
    max_pixels = max_pixels or settings.MEDPORTAL_MAX_IMAGE_PIXELS
    if width < 1 or height < 1:
        raise ImageRejected("The image has no pixels.")
    if width * height > max_pixels:
        raise ImageRejected(
            f"The image is {width}×{height} pixels ({width * height:,}); the limit is {max_pixels:,} pixels."
        )
    decoded = width * height * samples * frames * bytes_per_sample
    budget = settings.MEDPORTAL_MAX_PIXEL_BYTES
    if decoded > budget:
        raise ImageRejected(
            f"The image's pixel data is {decoded:,} bytes decoded ({width}×{height} pixels × {samples} samples × "
            f"{frames} frames × {bytes_per_sample} bytes); the limit is {budget:,} bytes."
        )


# Bytes per sample of the Pillow modes that are not 8-bit.
_MODE_BYTES = {"I;16": 2, "I;16B": 2, "I;16L": 2, "I": 4, "F": 4}


def load_pixels(data: bytes) -> np.ndarray:
    """Decode image bytes into a uint8 array: HxW for grayscale, HxWx3 for colour."""
    image = _pillow_open(data)
    if image.mode in ("L", "I;16", "I", "F", "1", "LA", "P") and not _has_colour(image):
        if image.mode in ("I;16", "I", "F"):
            array = np.asarray(image, dtype=np.float64)
            low, high = float(array.min()), float(array.max())
            scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
            return scaled.astype(np.uint8)
        return np.asarray(image.convert("L"), dtype=np.uint8)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _has_colour(image: PILImage.Image) -> bool:
    if image.mode != "P":
        return False
    rgb = np.asarray(image.convert("RGB"))
    return not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))
