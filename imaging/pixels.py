"""Pixels of a stored image, for display and for the CNN."""

import numpy as np

from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.dicom.pixels import dicom_pixels
from imaging.models import Image
from imaging.storage import blob_read
from imaging.validation import load_pixels


def image_pixels(image: Image) -> np.ndarray:
    """The image as uint8: HxW for grayscale, HxWx3 for colour."""
    data = blob_read(image.file.name)
    if image.content_type == DICOM_CONTENT_TYPE:
        # Modality LUT, VOI window, MONOCHROME1 and colour handled there; the middle frame of a multi-frame.
        return dicom_pixels(data)
    return load_pixels(data)
