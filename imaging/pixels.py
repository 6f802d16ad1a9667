"""Pixels of a stored image, for display and for the CNN."""

import numpy as np

from imaging.models import Image
from imaging.storage import blob_read
from imaging.validation import load_pixels


def image_pixels(image: Image) -> np.ndarray:
    """The image as uint8: HxW for grayscale, HxWx3 for colour."""
    return load_pixels(blob_read(image.file.name))
