"""Long-dependency tasks, sampled on the device from a PRNG key; the length T is the knob.

Every task gives time-major inputs ``xs: (T', B, I)``, per-example losses, an accuracy, the loss of
the best input-blind predictor (``baseline_loss``) and its solved criterion.

adding (length T)
    x_t = (v_t, m_t), v_t ~ U[0, 1]; exactly two markers m = 1, one uniform in [0, ⌊T/2⌋) and one
    in [⌊T/2⌋, T). The target, read from the last step, is the sum of the two marked values.
    Loss: squared error. Baseline: always predict 1 (the mean of the sum), MSE = 2·(1/12) = 1/6.
    Accuracy: fraction with |error| < 0.04 (Hochreiter & Schmidhuber 1997's criterion).
    Solved: eval MSE ≤ threshold (default 0.01). Variant `hochreiter1997`: see `Adding1997`.

copy (delay T)
    Alphabet: 8 data symbols 0..7, blank 8, delimiter 9 (one-hot inputs, 10 wide). Input: 10
    random data symbols, T−1 blanks, the delimiter, 10 blanks (T' = T + 20 steps). Target: blank
    for the first T+10 steps, then the 10 symbols (9 output classes: data and blank).
    Loss: cross-entropy averaged over all T' steps. Baseline: blanks, then a uniform guess over
    the 8 symbols: 10·ln 8 / (T+20). Accuracy: on the 10 copied symbols. Solved: accuracy ≥
    threshold (default 0.99).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp


class SolvedBy:
    """The solved criterion: solved_relation(the eval metric `solved_metric`, `threshold`)."""

    solved_metric: ClassVar[str]  # "eval_loss" or "eval_accuracy"
    solved_relation: ClassVar[Callable[[float, float], bool]]  # operator.le or operator.ge

    def solved(self, eval_loss: float, eval_accuracy: float) -> bool:
        value = eval_loss if self.solved_metric == "eval_loss" else eval_accuracy
        return self.solved_relation(value, self.threshold)


@dataclass(frozen=True)
class Adding(SolvedBy):
    length: int
    threshold: float = 0.01

    name: ClassVar[str] = "adding"
    input_size: ClassVar[int] = 2
    output_size: ClassVar[int] = 1
    reads_every_step: ClassVar[bool] = False  # the readout sees h_T only
    marker_channel: ClassVar[int] = 1  # the input channel whose 1s mark the steps the answer reads
    targets_batch_axis: ClassVar[int] = 0  # targets (B, 1)
    tolerance: ClassVar[float] = 0.04
    solved_metric: ClassVar[str] = "eval_loss"  # solved when eval_loss ≤ threshold
    solved_relation = operator.le

    def __post_init__(self):
        if self.length < 2:  # one marker in each half needs two halves
            raise ValueError(f"adding: length must be ≥ 2, got {self.length}")

    @property
    def sequence_length(self) -> int:
        return self.length

    @property
    def baseline_loss(self) -> float:
        return 1.0 / 6.0

    def sample(self, key: jax.Array, batch: int, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
        """xs: (T, B, 2) [value, marker], targets: (B, 1)."""
        key_values, key_first, key_second = jax.random.split(key, 3)
        T, half = self.length, self.length // 2
        values = jax.random.uniform(key_values, (T, batch), dtype)
        first = jax.random.randint(key_first, (batch,), 0, half)
        second = jax.random.randint(key_second, (batch,), half, T)
        steps = jnp.arange(T)[:, None]
        markers = ((steps == first) | (steps == second)).astype(dtype)
        targets = jnp.sum(values * markers, axis=0)[:, None]
        return jnp.stack([values, markers], axis=-1), targets

    def losses(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        """Squared error per example: outputs, targets (B, 1) → (B,)."""
        return jnp.sum((outputs - targets) ** 2, axis=-1)

    def accuracy(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        """Fraction of sequences with |error| < 0.04."""
        return jnp.mean(jnp.abs(outputs - targets)[:, 0] < self.tolerance)

    def connectivity_score(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        """ŷ of the input connectivity (`core.dynamics`): the prediction, (B,)."""
        return outputs[:, 0]


@dataclass(frozen=True)
class Copy(SolvedBy):
    length: int
    threshold: float = 0.99

    name: ClassVar[str] = "copy"
    symbols: ClassVar[int] = 8
    remember: ClassVar[int] = 10  # how many symbols are copied
    blank: ClassVar[int] = 8
    delimiter: ClassVar[int] = 9
    input_size: ClassVar[int] = 10
    output_size: ClassVar[int] = 9
    reads_every_step: ClassVar[bool] = True
    targets_batch_axis: ClassVar[int] = 1  # targets (T', B)
    solved_metric: ClassVar[str] = "eval_accuracy"  # solved when eval_accuracy ≥ threshold
    solved_relation = operator.ge

    def __post_init__(self):
        if self.length < 1:
            raise ValueError(f"copy: length (delay) must be ≥ 1, got {self.length}")

    @property
    def sequence_length(self) -> int:
        return self.length + 2 * self.remember

    @property
    def baseline_loss(self) -> float:
        return self.remember * math.log(self.symbols) / self.sequence_length

    def sample(self, key: jax.Array, batch: int, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
        """xs: (T+20, B, 10) one-hot, targets: (T+20, B) class indices."""
        data = jax.random.randint(key, (batch, self.remember), 0, self.symbols)
        blanks = lambda n: jnp.full((batch, n), self.blank, data.dtype)  # noqa: E731
        delimiter = jnp.full((batch, 1), self.delimiter, data.dtype)
        inputs = jnp.concatenate([data, blanks(self.length - 1), delimiter, blanks(self.remember)], 1)
        targets = jnp.concatenate([blanks(self.length + self.remember), data], axis=1)
        xs = jax.nn.one_hot(inputs.T, self.input_size, dtype=dtype)
        return xs, targets.T

    def losses(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        """Cross-entropy averaged over time: outputs (T', B, 9) logits, targets (T', B) → (B,)."""
        log_probs = jax.nn.log_softmax(outputs, axis=-1)
        picked = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
        return -jnp.mean(picked, axis=0)

    def accuracy(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        """Fraction of the copied symbols (the last 10 steps) predicted right."""
        tail = slice(-self.remember, None)
        return jnp.mean(jnp.argmax(outputs[tail], axis=-1) == targets[tail])

    def connectivity_score(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        """ŷ of the input connectivity (`core.dynamics`): over the 10 recall steps, the sum of the
        predicted symbol's logit (the prediction Distill's connectivity differentiates), (B,)."""
        recall = outputs[-self.remember:]
        predicted = jax.lax.stop_gradient(jnp.argmax(recall, axis=-1))
        return jnp.sum(jnp.take_along_axis(recall, predicted[..., None], axis=-1)[..., 0], axis=0)


@dataclass(frozen=True)
class Adding1997(SolvedBy):
    """The adding problem as Hochreiter & Schmidhuber (1997, Experiment 4) posed it.

    Sequence length L ~ U{T, …, T + ⌊T/10⌋} per sequence (padded with zeros to T' = T + ⌊T/10⌋);
    values U[−1, 1]; X1 is one of the first 10 pairs, X2 one of the first T/2 − 1 pairs still
    unmarked (positions 0 … ⌊T/2⌋−1 but X1's); the first and the last pair are marked −1 unless
    marked 1, and a marked first pair's value is set to 0. Target at step L: 0.5 + (X1 + X2)/4.
    Loss: squared error at step L. A sequence is correct when |error| < 0.04; solved: eval
    accuracy ≥ threshold (default 0.99). Baseline: always 0.5, MSE = Var(X1 + X2)/16.
    """

    length: int
    threshold: float = 0.99

    name: ClassVar[str] = "adding"
    variant: ClassVar[str] = "hochreiter1997"
    input_size: ClassVar[int] = 2
    output_size: ClassVar[int] = 1
    reads_every_step: ClassVar[bool] = True  # outputs at every step; the loss picks step L
    marker_channel: ClassVar[int] = 1  # the input channel whose 1s mark the steps the answer reads
    targets_batch_axis: ClassVar[int] = 0  # targets {"target": (B, 1), "last": (B,)}
    tolerance: ClassVar[float] = 0.04
    first_among: ClassVar[int] = 10
    solved_metric: ClassVar[str] = "eval_accuracy"
    solved_relation = operator.ge

    def __post_init__(self):
        if self.length < 2 * self.first_among + 2:  # X1's ten positions lie before T/2 − 1
            raise ValueError(f"adding (hochreiter1997): length must be ≥ 22, got {self.length}")

    @property
    def sequence_length(self) -> int:
        return self.length + self.length // 10

    @property
    def baseline_loss(self) -> float:
        # Var(X) = 1/3 for X ~ U[−1, 1], 0 when the marked pair is the first (its value is 0).
        p_first_x1 = 1 / self.first_among
        p_first_x2 = (1 - p_first_x1) / (self.length // 2 - 1)
        return (2 - p_first_x1 - p_first_x2) / 3 / 16

    def sample(self, key: jax.Array, batch: int, dtype=jnp.float32) -> tuple[jax.Array, dict]:
        """xs: (T', B, 2) [value, marker], targets {"target": (B, 1), "last": (B,) = L − 1}."""
        key_values, key_lengths, key_first, key_second = jax.random.split(key, 4)
        T, padded = self.length, self.sequence_length
        lengths = jax.random.randint(key_lengths, (batch,), T, padded + 1)
        first = jax.random.randint(key_first, (batch,), 0, self.first_among)
        second = jax.random.randint(key_second, (batch,), 0, T // 2 - 1)
        second = second + (second >= first)  # the first T/2 − 1 positions other than X1's
        steps = jnp.arange(padded)[:, None]
        marked = (steps == first) | (steps == second)
        ends = (steps == 0) | (steps == lengths - 1)
        inside = steps < lengths
        markers = jnp.where(marked, 1.0, jnp.where(ends, -1.0, 0.0)) * inside
        values = jax.random.uniform(key_values, (padded, batch), dtype, -1.0, 1.0)
        values = jnp.where((steps == 0) & marked, 0.0, values) * inside
        targets = 0.5 + jnp.sum(values * marked, axis=0)[:, None] / 4
        xs = jnp.stack([values, markers.astype(dtype)], axis=-1)
        return xs, {"target": targets.astype(dtype), "last": lengths - 1}

    def final_outputs(self, outputs: jax.Array, targets: dict) -> jax.Array:
        """outputs (T', B, 1) → (B, 1) at each sequence's last step."""
        return outputs[targets["last"], jnp.arange(outputs.shape[1])]

    def losses(self, outputs: jax.Array, targets: dict) -> jax.Array:
        """Squared error at each sequence's last step: (B,)."""
        return jnp.sum((self.final_outputs(outputs, targets) - targets["target"]) ** 2, axis=-1)

    def accuracy(self, outputs: jax.Array, targets: dict) -> jax.Array:
        """Fraction of sequences with |error| < 0.04 (H&S's "processed correctly")."""
        error = self.final_outputs(outputs, targets) - targets["target"]
        return jnp.mean(jnp.abs(error)[:, 0] < self.tolerance)

    def connectivity_score(self, outputs: jax.Array, targets: dict) -> jax.Array:
        """ŷ of the input connectivity (`core.dynamics`): the prediction at each sequence's
        last step, (B,)."""
        return self.final_outputs(outputs, targets)[:, 0]


Task = Adding | Copy | Adding1997
TASKS: dict[str, type] = {task.name: task for task in (Adding, Copy)}
VARIANTS: dict[tuple[str, str], type] = {("adding", "hochreiter1997"): Adding1997}
VARIANT_NAMES = ("standard", *sorted({variant for _, variant in VARIANTS}))


def get(name: str, variant: str = "standard") -> type:
    """The task class registered under `name` (`adding`, `copy`) and `variant`."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}")
    if variant == "standard":
        return TASKS[name]
    try:
        return VARIANTS[name, variant]
    except KeyError:
        allowed = ["standard"] + [v for (n, v) in VARIANTS if n == name]
        raise KeyError(f"task {name!r} has no variant {variant!r}; allowed: {', '.join(allowed)}") from None


def make(name: str, length: int, threshold: float | None = None, variant: str = "standard") -> Task:
    """A task instance; `threshold=None` keeps the task's default solved criterion."""
    cls = get(name, variant)
    return cls(length) if threshold is None else cls(length, threshold)
