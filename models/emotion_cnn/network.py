"""A compact VGG-style CNN for 48x48 grayscale faces (about 1.3M parameters).

Four blocks of two 3x3 convolutions with batch norm, each halving the resolution, then global
average pooling and a small dense head. Each image is standardised inside the network (zero mean,
unit variance), which removes global brightness and contrast before the first convolution, so every
client only sends pixels in 0..1.
"""

from __future__ import annotations

import keras
from keras import layers

from models.emotion_cnn import IMAGE_SIZE, LABELS


@keras.saving.register_keras_serializable(package="emotune")
class PerImageStandardization(layers.Layer):
    """(x - mean) / std per image, as tf.image.per_image_standardization does."""

    def call(self, x):
        mean = keras.ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = keras.ops.std(x, axis=(1, 2, 3), keepdims=True)
        return (x - mean) / keras.ops.maximum(std, 1.0 / IMAGE_SIZE)


def _block(x, filters: int, dropout: float):
    for _ in range(2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D()(x)
    return layers.Dropout(dropout)(x)


def build_model(widths: tuple[int, ...] = (32, 64, 128, 256), dense: int = 256) -> keras.Model:
    """The network, from images in 0..1 to probabilities over the 7 labels."""
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="images")
    x = PerImageStandardization()(inputs)
    for i, width in enumerate(widths):
        x = _block(x, width, dropout=0.1 + 0.05 * i)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(dense, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(len(LABELS), activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="emotion_cnn")
