"""The one image-to-tensor path shared by training and the serving worker.

Training calls exactly these functions on the source images, and the worker calls
them on uploaded images, so the two can never drift apart. Intensity scaling is
deliberately NOT done here: it lives inside each Keras model (a Rescaling layer),
so the worker only needs to know the input size, colour mode and resize mode that
the model card states.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

COLOR_MODES = ("grayscale", "rgb")
RESIZE_MODES = ("stretch", "pad")


def _as_hwc(pixels: np.ndarray) -> np.ndarray:
    if not isinstance(pixels, np.ndarray):
        raise TypeError("pixels must be a numpy array")
    if pixels.dtype != np.uint8:
        raise TypeError(f"pixels must be uint8, got {pixels.dtype}; window/scale to 8 bits first")
    if pixels.ndim == 2:
        return pixels[:, :, None]
    if pixels.ndim == 3 and pixels.shape[2] in (1, 3, 4):
        # An alpha channel carries no diagnostic content; drop it rather than fail.
        return pixels[:, :, :3] if pixels.shape[2] == 4 else pixels
    raise ValueError(f"expected HxW, HxWx1, HxWx3 or HxWx4 pixels, got shape {pixels.shape}")


def convert_color(pixels: np.ndarray, color_mode: str) -> np.ndarray:
    """uint8 HxWxC (C in 1, 3) to HxWx1 for grayscale or HxWx3 for rgb."""
    if color_mode not in COLOR_MODES:
        raise ValueError(f"color_mode must be one of {COLOR_MODES}, got {color_mode!r}")
    pixels = _as_hwc(pixels)
    channels = pixels.shape[2]
    if color_mode == "grayscale":
        if channels == 1:
            return pixels
        # ITU-R BT.601 luma, the same weights PIL's convert("L") uses.
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)[:, :, None]
    if channels == 3:
        return pixels
    return np.repeat(pixels, 3, axis=2)


def letterbox_geometry(original_size: tuple[int, int], input_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(new_h, new_w, top, left) of an aspect-preserving fit of ``original_size`` into ``input_size``."""
    oh, ow = original_size
    ih, iw = input_size
    scale = min(ih / oh, iw / ow)
    nh = min(ih, max(1, int(round(oh * scale))))
    nw = min(iw, max(1, int(round(ow * scale))))
    return nh, nw, (ih - nh) // 2, (iw - nw) // 2


def _resize(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    h, w = image.shape[:2]
    th, tw = size_hw
    if (h, w) == (th, tw):
        return image
    # INTER_AREA averages when shrinking (no aliasing, the way MedMNIST was made);
    # bilinear is the smooth choice when enlarging.
    interp = cv2.INTER_AREA if th <= h and tw <= w else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(image), (tw, th), interpolation=interp)
    return out if out.ndim == 3 else out[:, :, None]


def to_model_input(
    pixels: np.ndarray,
    *,
    input_size: tuple[int, int],
    color_mode: str,
    resize: str = "stretch",
) -> np.ndarray:
    """Turn one uint8 image into the float32 (h, w, c) tensor a model expects.

    ``pixels`` is HxW (grayscale) or HxWx3 (RGB) uint8. Values stay in 0..255.
    ``resize="stretch"`` ignores the aspect ratio; ``"pad"`` letterboxes with black,
    which suits images on a black background (e.g. segmented cells).
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    th, tw = int(input_size[0]), int(input_size[1])
    if th < 1 or tw < 1:
        raise ValueError(f"invalid input_size {input_size}")
    image = convert_color(pixels, color_mode)
    if resize == "stretch":
        out = _resize(image, (th, tw))
    else:
        nh, nw, top, left = letterbox_geometry(image.shape[:2], (th, tw))
        out = np.zeros((th, tw, image.shape[2]), dtype=np.uint8)
        out[top : top + nh, left : left + nw] = _resize(image, (nh, nw))
    return out.astype(np.float32)


def to_model_batch(
    images: Iterable[np.ndarray],
    *,
    input_size: tuple[int, int],
    color_mode: str,
    resize: str = "stretch",
) -> np.ndarray:
    """Stack several images into a float32 (n, h, w, c) batch via ``to_model_input``."""
    channels = 1 if color_mode == "grayscale" else 3
    batch = [to_model_input(img, input_size=input_size, color_mode=color_mode, resize=resize) for img in images]
    if not batch:
        return np.zeros((0, int(input_size[0]), int(input_size[1]), channels), dtype=np.float32)
    return np.stack(batch)


def resize_heatmap(heatmap: np.ndarray, original_size: tuple[int, int], *, resize: str = "stretch") -> np.ndarray:
    """Map a heatmap at model-input resolution back onto the original image grid.

    ``original_size`` is (height, width). For letterboxed inputs the padding is cut
    away first, so the map lines up with the image and keeps its aspect ratio.
    Values stay in [0, 1].
    """
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap must be 2-D, got shape {heatmap.shape}")
    oh, ow = int(original_size[0]), int(original_size[1])
    if resize == "pad":
        nh, nw, top, left = letterbox_geometry((oh, ow), heatmap.shape)
        heatmap = heatmap[top : top + nh, left : left + nw]
    elif resize != "stretch":
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    out = cv2.resize(np.ascontiguousarray(heatmap), (ow, oh), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0)


def heatmap_to_uint8(heatmap: np.ndarray) -> np.ndarray:
    """[0, 1] float heatmap to uint8 0..255 (what the worker writes as a PNG)."""
    return np.round(np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def overlay_heatmap(pixels: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.4) -> np.ndarray:
    """Blend a viridis-coloured heatmap (same HxW as ``pixels``) over the image; uint8 RGB out.

    Viridis, not a rainbow: perceptually uniform and readable with red-green colour blindness.
    """
    rgb = convert_color(pixels, "rgb")
    if heatmap.shape != rgb.shape[:2]:
        raise ValueError(f"heatmap {heatmap.shape} does not match image {rgb.shape[:2]}")
    colour = cv2.applyColorMap(heatmap_to_uint8(heatmap), cv2.COLORMAP_VIRIDIS)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    blended = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colour.astype(np.float32)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)
