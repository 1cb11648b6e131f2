"""The emotion networks `screener train` can build, at the 48x48 grey input of FER2013.

Keras is imported inside the builders: scans never load this module's dependencies. The
softmax is always float32: under mixed precision (`TrainSettings.precision`) a bfloat16 softmax
rounds small probabilities and the loss with them.
"""

from __future__ import annotations

from typing import Any

from screener.domain import EMOTIONS, INPUT_SIZE
from screener.lab.train_settings import TrainSettings


def build_mini_xception(settings: TrainSettings) -> Any:
    """Four residual blocks of depthwise-separable convolutions, as in the original paper."""
    import keras
    from keras import layers, regularizers

    reg = regularizers.l2(settings.l2)
    w = settings.width
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="faces")
    x = inputs
    for _ in range(2):
        x = layers.Conv2D(8 * w, 3, kernel_regularizer=reg, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    for filters in (f * w for f in settings.blocks):
        residual = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(x)
        residual = layers.BatchNormalization()(residual)
        x = layers.SeparableConv2D(
            filters, 3, padding="same", depthwise_regularizer=reg,
            pointwise_regularizer=reg, use_bias=False,
        )(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(
            filters, 3, padding="same", depthwise_regularizer=reg,
            pointwise_regularizer=reg, use_bias=False,
        )(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.add([x, residual])
    x = layers.Conv2D(len(EMOTIONS), 3, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Activation("softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="mini_xception")


def build_model(settings: TrainSettings) -> Any:
    if settings.arch == "vgg":
        return build_vgg(settings)
    return build_mini_xception(settings)


def build_vgg(settings: TrainSettings) -> Any:
    """A VGG at 48x48 (Khaireddin & Chen 2021): per stage two 3x3 convolutions with batch
    norm, then max pooling and dropout; a hidden dense layer before the classifier. Plain
    convolutions cost more than mini-Xception's separable ones but learn more per layer,
    which is what an underfitting model needs."""
    import keras
    from keras import layers, regularizers

    reg = regularizers.l2(settings.l2) if settings.l2 else None
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="faces")
    x = inputs
    for filters in (f * settings.width for f in settings.blocks):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", kernel_regularizer=reg,
                              use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(settings.dropout)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(settings.dense, kernel_regularizer=reg, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(settings.dropout)(x)
    outputs = layers.Dense(len(EMOTIONS), activation="softmax", name="probabilities",
                           dtype="float32")(x)
    return keras.Model(inputs, outputs, name="vgg")


def architecture(settings: TrainSettings) -> str:
    if settings.arch == "vgg":
        return (f"VGG (Khaireddin & Chen 2021), stages {list(settings.blocks)} x{settings.width}, "
                f"dense {settings.dense}, dropout {settings.dropout:g}")
    return f"mini-Xception (Arriaga et al. 2017), blocks {list(settings.blocks)} x{settings.width}"
