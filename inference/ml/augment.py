"""Modality-aware training augmentation, expressed as Keras preprocessing layers.

Each preset only uses transformations that leave the diagnosis unchanged for that
kind of image:

- chest X-ray: no flips at all (a mirrored film shows dextrocardia and swaps the
  side of every finding), only small rotations/shifts/zoom of a positioned patient
  and mild exposure changes;
- dermoscopy: a lesion has no canonical orientation, so any rotation and both flips,
  with small colour-intensity changes (hue is diagnostic and is left alone);
- microscopy (blood smears): cells on a slide have no orientation either, so any
  rotation and both flips, mild stain-intensity changes;
- ultrasound: left/right mirroring is harmless but depth (top to bottom) is not, so
  horizontal flips and small rotations only, plus gain (brightness/contrast) jitter;
- fundus: left and right eyes are mirror images, so horizontal flips and moderate
  rotations, mild illumination changes;
- brain MRI: hemispheres are near-symmetric and tumours occur on either side, so
  horizontal flips, small rotations, shifts and zoom; no vertical flips.

The layers only act while training; the saved model never contains them.
"""

from __future__ import annotations

PRESETS: dict[str, dict] = {
    "chest_xray": {
        "rotation_deg": 7.0,
        "translate": 0.06,
        "zoom": 0.10,
        "brightness": 0.10,
        "contrast": 0.15,
        "fill_mode": "constant",
    },
    "dermoscopy": {
        "hflip": True,
        "vflip": True,
        "rotation_deg": 180.0,
        "zoom": 0.10,
        "brightness": 0.08,
        "contrast": 0.10,
        "fill_mode": "reflect",
    },
    "microscopy": {
        "hflip": True,
        "vflip": True,
        "rotation_deg": 180.0,
        "translate": 0.05,
        "zoom": 0.05,
        "brightness": 0.08,
        "contrast": 0.10,
        # Cells sit on a light background: black (constant) corners from a 180-degree
        # rotation would make training images unlike any smear the model reads.
        "fill_mode": "reflect",
    },
    "ultrasound": {
        "hflip": True,
        "rotation_deg": 6.0,
        "translate": 0.05,
        "zoom": 0.08,
        "brightness": 0.10,
        "contrast": 0.15,
        "fill_mode": "constant",
    },
    "fundus": {
        "hflip": True,
        "rotation_deg": 15.0,
        "zoom": 0.05,
        "brightness": 0.08,
        "contrast": 0.10,
        "fill_mode": "constant",
    },
    "mri": {
        "hflip": True,
        "rotation_deg": 10.0,
        "translate": 0.06,
        "zoom": 0.10,
        "brightness": 0.10,
        "contrast": 0.15,
        "fill_mode": "constant",
    },
}


def resolve(spec: str | dict | None) -> dict:
    """A preset name or an explicit dict to a dict of augmentation parameters."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        try:
            return dict(PRESETS[spec])
        except KeyError:
            raise ValueError(f"unknown augmentation preset {spec!r}; have {sorted(PRESETS)}") from None
    return dict(spec)


def build_augmentation(spec: str | dict | None, *, seed: int = 0):
    """A ``keras.Sequential`` of random layers (identity at inference), or None."""
    import keras  # noqa: PLC0415 - TensorFlow: loaded only once a model is used
    from keras import layers  # noqa: PLC0415 - TensorFlow: loaded only once a model is used

    params = resolve(spec)
    if not params:
        return None
    fill_mode = params.get("fill_mode", "constant")
    stack = []
    if params.get("hflip") and params.get("vflip"):
        stack.append(layers.RandomFlip("horizontal_and_vertical", seed=seed))
    elif params.get("hflip"):
        stack.append(layers.RandomFlip("horizontal", seed=seed))
    elif params.get("vflip"):
        stack.append(layers.RandomFlip("vertical", seed=seed))
    if params.get("rotation_deg"):
        stack.append(
            layers.RandomRotation(params["rotation_deg"] / 360.0, fill_mode=fill_mode, fill_value=0.0, seed=seed + 1)
        )
    if params.get("translate"):
        t = params["translate"]
        stack.append(layers.RandomTranslation(t, t, fill_mode=fill_mode, fill_value=0.0, seed=seed + 2))
    if params.get("zoom"):
        z = params["zoom"]
        stack.append(layers.RandomZoom(z, z, fill_mode=fill_mode, fill_value=0.0, seed=seed + 3))
    if params.get("brightness"):
        stack.append(layers.RandomBrightness(params["brightness"], value_range=(0.0, 255.0), seed=seed + 4))
    if params.get("contrast"):
        stack.append(layers.RandomContrast(params["contrast"], value_range=(0.0, 255.0), seed=seed + 5))
    return keras.Sequential(stack, name="augmentation")
