"""Compact residual CNNs for small medical images.

The design keeps parameter counts in the tens to hundreds of thousands so every
model trains on a CPU in minutes and ships as a file of a few megabytes:
Rescaling inside the model (serving never scales pixels), a plain-conv stem,
residual stages of (optionally depthwise-separable) 3x3 convolutions with batch
norm, global average pooling, dropout and a softmax head. The logits and the
softmax are separate layers so Grad-CAM can differentiate the pre-softmax score.
"""

from __future__ import annotations

from collections.abc import Sequence

GRADCAM_LAYER = "top_activation"
LOGITS_LAYER = "logits"
OUTPUT_LAYER = "probabilities"
# Keras' default 0.99 averages batch statistics over ~100 steps, i.e. several epochs of
# these small data sets; at the start of training the inference-time statistics then lag
# far behind the weights and validation swings wildly. 0.9 tracks within an epoch.
BN_MOMENTUM = 0.9


def _conv(layers, filters: int, stride: int, separable: bool, name: str):
    if separable:
        return layers.SeparableConv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=name)
    return layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=name)


def _residual_block(layers, x, filters: int, stride: int, separable: bool, name: str):
    shortcut = x
    y = _conv(layers, filters, stride, separable, f"{name}_conv1")(x)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = _conv(layers, filters, 1, separable, f"{name}_conv2")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(shortcut)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_proj_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(y)


def build_resnet(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    stem_filters: int = 32,
    stem_stride: int = 1,
    widths: Sequence[int] = (32, 64, 128),
    blocks: Sequence[int] = (1, 1, 1),
    separable: bool = False,
    head_filters: int | None = None,
    dropout: float = 0.3,
    name: str = "medportal_cnn",
):
    """Residual CNN with softmax output; stage ``i`` (i > 0) halves the resolution.

    ``separable`` swaps the 3x3 convolutions of the residual blocks for
    depthwise-separable ones (cheaper at higher resolutions). ``head_filters`` adds a
    1x1 conv before pooling, whose activation is the Grad-CAM target layer.
    """
    import keras  # noqa: PLC0415 - TensorFlow: loaded only once a model is used
    from keras import layers  # noqa: PLC0415 - TensorFlow: loaded only once a model is used

    if len(widths) != len(blocks):
        raise ValueError("widths and blocks must have the same length")
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = layers.Conv2D(stem_filters, 3, strides=stem_stride, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    for stage, (filters, n_blocks) in enumerate(zip(widths, blocks, strict=True)):
        for block in range(n_blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _residual_block(layers, x, filters, stride, separable, f"s{stage}b{block}")
    if head_filters:
        x = layers.Conv2D(head_filters, 1, use_bias=False, name="head_conv")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="head_bn")(x)
    x = layers.Activation("relu", name=GRADCAM_LAYER)(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, name=LOGITS_LAYER)(x)
    outputs = layers.Activation("softmax", dtype="float32", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, outputs, name=name)


ARCHITECTURES = {"resnet": build_resnet}


def build_model(architecture: str, **params):
    """Build a registered architecture by name with recipe parameters."""
    try:
        builder = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; have {sorted(ARCHITECTURES)}") from None
    return builder(**params)
