"""DICOM pixel data to a display- and CNN-ready uint8 array.

Grayscale: modality LUT (rescale slope/intercept or a Modality LUT Sequence), then the VOI
window the modality chose (or a robust percentile window when it chose none), then
MONOCHROME1 inverted so that bone is always bright. Colour: YBR converted to RGB, palette
colour expanded, deep samples scaled to 8 bits. Multi-frame: the middle frame.
"""

import numpy as np
from pydicom import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, pixel_array
from pydicom.uid import UID

from imaging.dicom.parsing import read_dataset

# The percentiles of a robust window, when the file carries no VOI.
_LOW_PERCENTILE, _HIGH_PERCENTILE = 0.5, 99.5


class PixelDecodeError(Exception):
    """The pixel data could not be decoded (no decoder for the transfer syntax, or corrupt data)."""


def number_of_frames(dataset: Dataset) -> int:
    try:
        return max(int(dataset.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def default_frame(dataset: Dataset) -> int:
    # A cine loop or a volume is best summarised by its middle: the first frame is often
    # a scout or an empty start of the loop.
    return number_of_frames(dataset) // 2


def decode_frame(dataset: Dataset, index: int) -> tuple[np.ndarray, str]:
    """One frame as decoded samples, with the photometric interpretation they are in.

    Colour comes back as RGB: pydicom converts YBR_FULL(_422) and the JPEG 2000 decoders undo
    YBR_ICT/YBR_RCT themselves.
    """
    try:
        array = pixel_array(dataset, index=index, raw=False)
    except Exception as exc:  # each decoder plugin raises its own types
        syntax = UID(str(dataset.file_meta.get("TransferSyntaxUID", "")))
        raise PixelDecodeError(f"The pixel data ({syntax.name or syntax}) could not be decoded: {exc}") from exc
    photometric = str(dataset.get("PhotometricInterpretation") or "").strip().upper()
    if photometric.startswith("YBR"):
        photometric = "RGB"
    return array, photometric


def _frame_item(dataset: Dataset, index: int, sequence: str) -> Dataset | None:
    """The functional group item of an enhanced multi-frame image that applies to this frame."""
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    if per_frame and index < len(per_frame):
        items = per_frame[index].get(sequence)
        if items:
            return items[0]
    shared = dataset.get("SharedFunctionalGroupsSequence")
    if shared:
        items = shared[0].get(sequence)
        if items:
            return items[0]
    return None


def _first(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value[0] if hasattr(value, "__len__") and not isinstance(value, str) else value)
    except (TypeError, ValueError, IndexError):
        return None


def modality_values(array: np.ndarray, dataset: Dataset, index: int) -> np.ndarray:
    """Stored values to modality units (e.g. Hounsfield units for CT)."""
    if "ModalityLUTSequence" in dataset:
        return apply_modality_lut(array, dataset).astype(np.float64)
    source = _frame_item(dataset, index, "PixelValueTransformationSequence") or dataset
    slope = _first(source.get("RescaleSlope"))
    intercept = _first(source.get("RescaleIntercept"))
    values = array.astype(np.float64)
    if slope is not None and slope != 0:
        values = values * slope
    if intercept is not None:
        values = values + intercept
    return values


def _window(values: np.ndarray, centre: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2 windowing, to [0, 1]."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - centre) / max(width, 1e-6)))
    if function == "LINEAR_EXACT":
        if width <= 0:
            return (values > centre).astype(np.float64)
        return np.clip((values - centre) / width + 0.5, 0.0, 1.0)
    width = max(width, 1.0)
    return np.clip((values - (centre - 0.5)) / max(width - 1.0, 1e-6) + 0.5, 0.0, 1.0)


def voi_scaled(values: np.ndarray, dataset: Dataset, index: int) -> np.ndarray:
    """Modality values to [0, 1] through the file's VOI, or a robust window when it has none."""
    source = _frame_item(dataset, index, "FrameVOILUTSequence") or dataset
    centre, width = _first(source.get("WindowCenter")), _first(source.get("WindowWidth"))
    if centre is not None and width is not None and width > 0:
        function = str(source.get("VOILUTFunction") or "LINEAR").strip().upper()
        return _window(values, centre, width, function)
    if "VOILUTSequence" in dataset:
        lut = dataset.VOILUTSequence[0]
        mapped = apply_voi(values, dataset, index=0).astype(np.float64)
        bits = int(lut.LUTDescriptor[2]) or 16
        return np.clip(mapped / float(2**bits - 1), 0.0, 1.0)
    low, high = np.percentile(values, [_LOW_PERCENTILE, _HIGH_PERCENTILE])
    if high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _colour_uint8(array: np.ndarray, bits: int) -> np.ndarray:
    if array.dtype == np.uint8 and bits <= 8:
        return np.ascontiguousarray(array)
    peak = float(2**bits - 1) if bits else float(array.max() or 1)
    return _to_uint8(array.astype(np.float64) / peak)


def frame_uint8(
    dataset: Dataset, index: int | None = None, *, window: tuple[float, float, str] | None = None
) -> np.ndarray:
    """A frame as uint8: HxW for grayscale, HxWx3 for colour. Raises PixelDecodeError.

    ``window`` (centre, width, LINEAR / LINEAR_EXACT / SIGMOID) replaces the file's VOI for grayscale.
    """
    index = default_frame(dataset) if index is None else index
    array, photometric = decode_frame(dataset, index)
    try:
        if photometric == "PALETTE COLOR":
            rgb = apply_color_lut(array, dataset)
            bits = int(dataset.RedPaletteColorLookupTableDescriptor[2])
            return _colour_uint8(rgb, 8 if rgb.dtype == np.uint8 else bits)
        if array.ndim == 3:
            return _colour_uint8(array, int(dataset.get("BitsStored") or 8))
        values = modality_values(array, dataset, index)
        unit = _window(values, *window) if window else voi_scaled(values, dataset, index)
        if photometric == "MONOCHROME1":
            unit = 1.0 - unit
        return _to_uint8(unit)
    except PixelDecodeError:
        raise
    except Exception as exc:  # a malformed LUT or window is a decoding failure too
        raise PixelDecodeError(f"The pixel data could not be converted for display: {exc}") from exc


def dicom_pixels(data: bytes) -> np.ndarray:
    """The stored DICOM file's pixels, CNN- and display-ready."""
    return frame_uint8(read_dataset(data))
