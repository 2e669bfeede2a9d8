"""Pixel-by-pixel image classification (Le, Jaitly & Hinton 2015's sequential MNIST): an image
read one pixel a step, then `pad` blank steps, its class read at the last step.

x_t = pixel_t / scale ∈ [0, 1] (one input), t = 0 … P−1 in row-major order (`sequential`) or in
one fixed permutation of the P positions (`permuted`, `permutation`); then `pad` steps of x = 0,
so T' = P + pad. Loss: cross-entropy at the last step (10 classes). Baseline: the cross-entropy of
the best input-blind predictor, the train labels' frequencies: their entropy (`label_entropy`),
a little under ln 10 when the classes are not exactly balanced. Accuracy: argmax right. Solved:
eval accuracy ≥ threshold (default 0.8). Images have no rule to learn exactly, so "solved" means
"classifies well", not "solved" as a synthetic task is: 0.8 lies below the 0.85–0.93 that both
cells generalise to on the 297 held-out digits at T' = 64 (measured, configs/pixels.yaml: 1500
training images cap it).

The data set lives in `data` (`PixelArrays`: uint8 images, int32 labels) and is compared through
its `sha256`, never element by element, so a task stays a hashable static object
of the Trainer. `batched.compile_batched` passes the arrays into the compiled functions as an
argument (`with_data`), rather than letting jit embed them as constants (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstm_vg.core.tasks.base import ClassAtTheEnd

ORDERS = ("sequential", "permuted")
# The seed of the permuted order: NumPy's legacy RandomState, whose stream NumPy keeps frozen
# (NEP 19), so every run on every version reads the pixels in the same order.
PERMUTATION_SEED = 0


class PixelArrays(NamedTuple):
    """A data set split into train and test: images (N, P) uint8, row-major pixels; labels (N,)
    int32 classes 0–9. A pytree: jit takes it as an argument."""

    train_images: Any
    train_labels: Any
    test_images: Any
    test_labels: Any


@cache
def permutation(pixels: int) -> np.ndarray:
    """The pixel order of `order: permuted`: RandomState(PERMUTATION_SEED).permutation(P), (P,)."""
    order = np.random.RandomState(PERMUTATION_SEED).permutation(pixels)
    order.flags.writeable = False
    return order


def label_entropy(labels: np.ndarray) -> float:
    """−Σ_c p_c ln p_c of the labels' frequencies p (nats, float64): the cross-entropy of
    predicting those frequencies for every example of the same labels, the best a predictor
    that does not see the input can do on them."""
    counts = np.bincount(np.asarray(labels).ravel())
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log(p)))


def evaluated(test_size: int, batch: int) -> np.ndarray:
    """The test examples an evaluation reads: n = min(batch, test_size), evenly spread,
    indices ⌊i·test_size/n⌋ for i = 0 … n−1 (all of them when n = test_size). MNIST's test file
    holds its easier half first (LeCun et al.), so the first n alone would be a biased sample."""
    n = min(batch, test_size)
    return np.arange(n) * test_size // n


@dataclass(frozen=True)
class Pixels(ClassAtTheEnd):
    """Pixel-by-pixel classification of `data` (the package docstring)."""

    data: PixelArrays = field(compare=False, repr=False)  # compared through sha256
    source: str = field(compare=False)  # where the images came from (a folder, or the digits)
    sha256: str  # of the arrays (`lstm_vg.datasets.digest`): equal sha256, equal data
    scale: int  # the largest intensity: x = pixel / scale
    baseline: float  # the train labels' entropy (`label_entropy`)
    order: str = "sequential"
    pad: int = 0
    threshold: float = 0.8

    name: ClassVar[str] = "pixels"
    input_size: ClassVar[int] = 1
    output_size: ClassVar[int] = 10
    reads_every_step: ClassVar[bool] = False  # the readout sees h_T only
    targets_batch_axis: ClassVar[int] = 0  # targets (B,) class indices
    min_length: ClassVar[int] = 1

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"pixels: order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        if self.pad < 0:
            raise ValueError(f"pixels: pad must be ≥ 0, got {self.pad}")
        super().__post_init__()

    @classmethod
    def of(cls, data: PixelArrays, source: str, sha256: str, scale: int, order: str = "sequential",
           pad: int = 0, threshold: float | None = None) -> Pixels:
        """The task on `data` (NumPy arrays), its baseline computed from the train labels."""
        options = {} if threshold is None else {"threshold": threshold}
        return cls(data, source, sha256, scale, label_entropy(data.train_labels), order, pad, **options)

    def with_data(self, data: PixelArrays) -> Pixels:
        """The same task reading `data` (inside jit: the traced arrays of the same data set)."""
        return dataclasses.replace(self, data=data)

    @property
    def pixels(self) -> int:
        return self.data.train_images.shape[1]

    @property
    def length(self) -> int:
        return self.pixels + self.pad

    @property
    def sequence_length(self) -> int:
        return self.length

    @property
    def baseline_loss(self) -> float:
        return self.baseline

    def sequences(self, images: jax.Array, dtype=jnp.float32) -> jax.Array:
        """Images (B, P) uint8 → inputs xs (T', B, 1): the pixels / scale in the task's order,
        then `pad` zeros. The images stay uint8 on the device; only a batch is converted."""
        x = jnp.asarray(images).astype(dtype) / jnp.asarray(self.scale, dtype)
        if self.order == "permuted":
            x = x[:, permutation(self.pixels)]
        return jnp.pad(x.T, ((0, self.pad), (0, 0)))[..., None]

    def sample(self, key: jax.Array, batch: int, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
        """A training batch: B train examples drawn uniformly with replacement by `key`; xs (T', B, 1),
        targets (B,) classes."""
        index = jax.random.randint(key, (batch,), 0, self.data.train_images.shape[0])
        images = jnp.take(jnp.asarray(self.data.train_images), index, axis=0)
        return self.sequences(images, dtype), jnp.take(jnp.asarray(self.data.train_labels), index)

    def sample_eval(self, key: jax.Array, batch: int, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
        """The eval batch: the held-out test examples `evaluated` picks (the key is not used:
        every run is evaluated on the same images)."""
        del key
        index = evaluated(self.data.test_images.shape[0], batch)
        images = jnp.asarray(self.data.test_images)[index]
        return self.sequences(images, dtype), jnp.asarray(self.data.test_labels)[index]

    def final_outputs(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        return outputs  # (B, 10), the readout of h_T

    def final_targets(self, targets: jax.Array) -> jax.Array:
        return targets

    @property
    def record(self) -> dict:
        """What meta.json records of the data (`task_data`)."""
        return {"source": self.source, "sha256": self.sha256, "train_examples": len(self.data.train_labels),
                "test_examples": len(self.data.test_labels), "pixels": self.pixels}
