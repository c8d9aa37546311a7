"""Train the emotion CNN on FER-2013 with augmentation, checkpoints and resume.

    python -m models.emotion_cnn.train --epochs 60

Interrupt it at any time: run the same command again and it resumes from the last finished epoch
(Keras BackupAndRestore). The best epoch by validation accuracy is kept and exported at the end as a
new SavedModel version beside this file.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import typer

HERE = Path(__file__).resolve().parent
app = typer.Typer(add_completion=False)


def random_affine(images, max_degrees: float = 10.0, max_zoom: float = 0.1, max_shift: float = 0.1):
    """Mirror, rotate, zoom and shift a batch of images with one projective transform per image.

    One combined transform is several times cheaper than Keras' separate random layers, which
    matters on two CPU cores.
    """
    import tensorflow as tf

    n = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    angle = tf.random.uniform([n], -max_degrees, max_degrees) * (3.141592653589793 / 180.0)
    scale = tf.random.uniform([n], 1.0 - max_zoom, 1.0 + max_zoom)
    flip = tf.where(tf.random.uniform([n]) < 0.5, -1.0, 1.0)
    shift = tf.random.uniform([n, 2], -max_shift, max_shift) * size
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    c = (size - 1.0) / 2.0
    # output (x, y) -> input (a0*x + a1*y + a2, b0*x + b1*y + b2): rotate and scale about the centre,
    # mirror horizontally, then shift.
    a0, a1 = cos * flip, -sin
    b0, b1 = sin * flip, cos
    a2 = c - a0 * c - a1 * c + shift[:, 0]
    b2 = c - b0 * c - b1 * c + shift[:, 1]
    zeros = tf.zeros([n])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )


def random_erasing(images, probability: float = 0.5, max_area: float = 0.25):
    """Blank one random rectangle in each image with ``probability`` (Zhong et al. 2020).

    The rectangle covers 2%..``max_area`` of the face with an aspect ratio of 1/3..3, and is filled
    with noise, so the network cannot rely on any single part of a face (a mouth, an eyebrow).
    """
    import tensorflow as tf

    n = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    area = tf.random.uniform([n], 0.02, max_area) * size * size
    log_ratio = tf.random.uniform([n], -1.0986, 1.0986)
    h = tf.sqrt(area * tf.exp(log_ratio))
    w = tf.sqrt(area / tf.exp(log_ratio))
    cy = tf.random.uniform([n], 0.0, size)
    cx = tf.random.uniform([n], 0.0, size)
    grid = tf.range(size)
    inside_y = tf.abs(grid[None, :] - cy[:, None]) < h[:, None] / 2
    inside_x = tf.abs(grid[None, :] - cx[:, None]) < w[:, None] / 2
    mask = tf.logical_and(inside_y[:, :, None], inside_x[:, None, :])
    mask = tf.logical_and(mask, (tf.random.uniform([n]) < probability)[:, None, None])[..., None]
    return tf.where(mask, tf.random.uniform(tf.shape(images)), images)


def _best_so_far(history: Path) -> float | None:
    """The best validation accuracy of the epochs already in ``history`` (a CSVLogger file), if any."""
    if not history.exists():
        return None
    with open(history) as f:
        values = [float(row["val_accuracy"]) for row in csv.DictReader(f) if row.get("val_accuracy")]
    return max(values, default=None)


def _cosine_with_warmup(base_lr: float, epochs: int, warmup: int = 2):
    def schedule(epoch: int, _lr: float = 0.0) -> float:
        if epoch < warmup:
            return base_lr * (epoch + 1) / warmup
        progress = (epoch - warmup) / max(1, epochs - warmup)
        return base_lr * 0.5 * (1 + math.cos(math.pi * progress))

    return schedule


@app.command()
def main(
    data_dir: Path = typer.Option(None, help="Folder holding fer2013/ (default: EMOTUNE_DATA_DIR or ../shared/data)"),
    epochs: int = typer.Option(60, min=1),
    batch_size: int = typer.Option(64, min=1),
    learning_rate: float = typer.Option(1e-3),
    optimizer: str = typer.Option("adamw", help="adamw, or sgd (Nesterov momentum 0.9)"),
    label_smoothing: float = typer.Option(0.0, min=0.0, max=0.5),
    erasing: float = typer.Option(0.0, min=0.0, max=1.0, help="Probability of random erasing per face"),
    warmup: int = typer.Option(2, min=0, help="Epochs of linear learning-rate warm-up"),
    init_from: Path = typer.Option(None, help="Start from the weights of this SavedModel version folder"),
    seed: int = typer.Option(1337),
    checkpoint_dir: Path = typer.Option(HERE / "checkpoints", help="Resume state, best weights, history.csv"),
    export_dir: Path = typer.Option(HERE, help="Where the SavedModel version is written"),
    limit: int = typer.Option(0, help="Train on the first N faces only (smoke runs)"),
    export: bool = typer.Option(True, help="Export the best epoch as a new version when done"),
    teacher: list[Path] = typer.Option(None, help="Distil from this served version folder (repeat: their mean)"),
    teacher_weight: float = typer.Option(0.5, min=0.0, max=1.0, help="Share of the teacher in each target"),
) -> None:
    """Train, keep the best epoch by validation accuracy, export it."""
    import keras
    import numpy as np
    import tensorflow as tf

    from models.emotion_cnn import LABELS
    from models.emotion_cnn.data import DEFAULT_DATA_DIR, fer_path, load_npz
    from models.emotion_cnn.export import export_savedmodel
    from models.emotion_cnn.network import build_model
    from models.emotion_cnn.teacher import TeacherError, mixed, soft_targets
    from models.emotion_cnn.warmstart import load_weights_from_savedmodel

    data_dir = data_dir or DEFAULT_DATA_DIR
    keras.utils.set_random_seed(seed)
    x_train, y_train = load_npz(fer_path("train", data_dir))
    x_val, y_val = load_npz(fer_path("val", data_dir))
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    typer.echo(f"train {len(x_train)} faces, validation {len(x_val)}, {epochs} epochs, checkpoints in {checkpoint_dir}")
    # the label's one-hot, or mixed with a teacher's probabilities (models/emotion_cnn/teacher.py)
    targets = np.eye(len(LABELS), dtype=np.float32)[y_train]
    if teacher:
        try:
            soft = soft_targets(teacher, x_train, checkpoint_dir / "teacher.npy")
        except TeacherError as e:
            raise typer.BadParameter(str(e), param_hint="--teacher") from None
        targets = mixed(targets, soft, teacher_weight)
        typer.echo(f"teacher: {', '.join(map(str, teacher))}, weight {teacher_weight}; it agrees with the labels "
                   f"on {(soft.argmax(1) == y_train).mean():.1%} of the training faces")  # fmt: skip

    def augment(x, target):
        x = random_affine(x)
        if erasing:
            x = random_erasing(x, erasing)
        return x, target

    train_ds = (
        tf.data.Dataset.from_tensor_slices((x_train, targets))
        .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    val_labels = tf.one_hot(y_val, len(LABELS))
    val_ds = tf.data.Dataset.from_tensor_slices((x_val, val_labels)).batch(256).prefetch(tf.data.AUTOTUNE)

    model = build_model()
    if init_from:
        typer.echo(f"starting from the {load_weights_from_savedmodel(model, init_from)} weights of {init_from}")
    if optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9, nesterov=True, weight_decay=5e-4)
    elif optimizer == "adamw":
        opt = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=1e-4)
    else:
        raise typer.BadParameter(f"optimizer must be adamw or sgd, not {optimizer!r}")
    model.compile(
        optimizer=opt,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=["accuracy"],
    )
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    best = checkpoint_dir / "best.weights.h5"
    callbacks = [
        keras.callbacks.BackupAndRestore(str(checkpoint_dir / "resume")),
        # on a resumed run, only an epoch better than the best so far replaces the best weights
        keras.callbacks.ModelCheckpoint(
            str(best),
            monitor="val_accuracy",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=_best_so_far(checkpoint_dir / "history.csv"),
        ),
        keras.callbacks.CSVLogger(str(checkpoint_dir / "history.csv"), append=True),
        keras.callbacks.LearningRateScheduler(_cosine_with_warmup(learning_rate, epochs, warmup)),
    ]
    model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=2)

    model.load_weights(str(best))
    _, accuracy = model.evaluate(val_ds, verbose=0)
    typer.echo(f"best epoch: validation accuracy {accuracy:.4f}")
    if export:
        path = export_savedmodel(model, export_dir)
        (path / "training.json").write_text(
            json.dumps(
                {
                    "epochs": epochs,
                    "seed": seed,
                    "optimizer": optimizer,
                    "learning_rate": learning_rate,
                    "label_smoothing": label_smoothing,
                    "erasing": erasing,
                    "init_from": str(init_from) if init_from else None,
                    "teacher": [str(t) for t in teacher or []],
                    "teacher_weight": teacher_weight if teacher else None,
                    "val_accuracy_single_view": round(float(accuracy), 4),
                },
                indent=2,
            )
        )
        typer.echo(f"exported {path}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app()
