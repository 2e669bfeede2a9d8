"""Adding and multiplication: two marked values among many, their sum or product read at the end
(definitions: the package docstring, `lstm_vg.core.tasks`); each as Pascanu et al.'s code and
as Hochreiter & Schmidhuber (1997) posed it."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from lstm_vg.core.tasks.base import SolvedBy, VariableLength, refuse_short


def product_of_marked(values: jax.Array, marked: jax.Array) -> jax.Array:
    """Multiplication's target from values (T, B) and the marked steps (T, B) bool: X1·X2, (B,)."""
    return jnp.prod(jnp.where(marked, values, 1), axis=0)


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
    min_length: ClassVar[int] = 2  # one marker in each half needs two halves
    tolerance: ClassVar[float] = 0.04
    solved_metric: ClassVar[str] = "eval_loss"  # solved when eval_loss ≤ threshold
    solved_relation = operator.le

    def __post_init__(self):
        refuse_short(self)

    @staticmethod
    def windows(length: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """The [low, high) steps of the first and of the second marker."""
        return (0, length // 2), (length // 2, length)

    @staticmethod
    def combine(values: jax.Array, marked: jax.Array) -> jax.Array:
        """The target from values (T, B) and the marked steps (T, B) bool: their sum, (B,)."""
        return jnp.sum(values * marked, axis=0)

    @property
    def sequence_length(self) -> int:
        return self.length

    @property
    def baseline_loss(self) -> float:
        return 1.0 / 6.0

    def sample(self, key: jax.Array, batch: int, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
        """xs: (T, B, 2) [value, marker], targets: (B, 1)."""
        key_values, key_first, key_second = jax.random.split(key, 3)
        (first_low, first_high), (second_low, second_high) = self.windows(self.length)
        values = jax.random.uniform(key_values, (self.length, batch), dtype)
        first = jax.random.randint(key_first, (batch,), first_low, first_high)
        second = jax.random.randint(key_second, (batch,), second_low, second_high)
        steps = jnp.arange(self.length)[:, None]
        marked = (steps == first) | (steps == second)
        targets = self.combine(values, marked)[:, None]
        return jnp.stack([values, marked.astype(dtype)], axis=-1), targets

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
class Multiplication(Adding):
    """Adding with Pascanu et al.'s windows (multiplication.py), the product as the target, their
    count of right answers and an accuracy criterion (the package docstring).

    multiplication.py draws one length per batch in [T, T + ⌊T/10⌋) and places the markers by
    it; here the length is T, as in our adding. Its inputs are (marker, value); ours keep
    adding's (value, marker).

    Solved: eval accuracy ≥ threshold (default 0.99), the fraction of sequences RNN.py counts
    right, because that is how the source decides: RNN.py stops, "Problem solved", when none of
    10 000 validation sequences has a squared error above 0.04 (`task.threshold: 1.0`). No
    input-blind net gets more than 77 % right (always 0.2: P(X1·X2 ≤ 0.4) = 0.4 + 0.4 ln 2.5;
    the baseline's 1/4, 61 %), nor one that knows only one operand (the same 0.4 + 0.4 ln 2.5),
    so 99 % needs both."""

    length: int
    threshold: float = 0.99

    name: ClassVar[str] = "multiplication"
    min_length: ClassVar[int] = 10  # ⌊T/10⌋ ≥ 1: the first marker's window is not empty
    squared_tolerance: ClassVar[float] = 0.04  # RNN.py: wrong when (y − t)² > 0.04
    solved_metric: ClassVar[str] = "eval_accuracy"  # solved when eval_accuracy ≥ threshold
    solved_relation = operator.ge

    @staticmethod
    def windows(length: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """multiplication.py's: p0 ∈ [0, ⌊T/10⌋), p1 ∈ [⌊T/10⌋, ⌊T/10⌋ + ⌊4T/10⌋)."""
        tenth = length // 10
        return (0, tenth), (tenth, tenth + 4 * length // 10)

    combine = staticmethod(product_of_marked)

    @property
    def baseline_loss(self) -> float:
        return 7 / 144  # E[(XY)²] − E[XY]² = 1/9 − 1/16

    def accuracy(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        """Fraction of sequences with squared error ≤ 0.04 (|error| ≤ 0.2)."""
        return jnp.mean(self.losses(outputs, targets) <= self.squared_tolerance)


@dataclass(frozen=True)
class Adding1997(VariableLength, SolvedBy):
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
    marker_channel: ClassVar[int] = 1  # the input channel whose 1s mark the steps the answer reads
    tolerance: ClassVar[float] = 0.04
    first_among: ClassVar[int] = 10
    min_length: ClassVar[int] = 2 * first_among + 2  # X1's ten positions lie before T/2 − 1
    low: ClassVar[float] = -1.0  # values U[low, 1]
    first_value: ClassVar[float] = 0.0  # a marked first pair's value ("we set X1 to zero")
    solved_metric: ClassVar[str] = "eval_accuracy"
    solved_relation = operator.ge

    def __post_init__(self):
        refuse_short(self)

    @staticmethod
    def combine(values: jax.Array, marked: jax.Array) -> jax.Array:
        """The target from values (T', B) and the marked steps (T', B): 0.5 + (X1 + X2)/4, (B,)."""
        return 0.5 + jnp.sum(values * marked, axis=0) / 4

    def first_pair_odds(self) -> tuple[float, float]:
        """P(X1 is the first pair), P(X2 is the first pair)."""
        p_first_x1 = 1 / self.first_among
        return p_first_x1, (1 - p_first_x1) / (self.length // 2 - 1)

    @property
    def baseline_loss(self) -> float:
        # Var(X) = 1/3 for X ~ U[−1, 1], 0 when the marked pair is the first (its value is 0).
        p_first_x1, p_first_x2 = self.first_pair_odds()
        return (2 - p_first_x1 - p_first_x2) / 3 / 16

    def sample(self, key: jax.Array, batch: int, dtype=jnp.float32) -> tuple[jax.Array, dict]:
        """xs: (T', B, 2) [value, marker], targets {"target": (B, 1), "last": (B,) = L − 1}."""
        key_values, key_lengths, key_first, key_second = jax.random.split(key, 4)
        T, padded = self.length, self.sequence_length
        lengths = self.sample_lengths(key_lengths, batch)
        first = jax.random.randint(key_first, (batch,), 0, self.first_among)
        second = jax.random.randint(key_second, (batch,), 0, T // 2 - 1)
        second = second + (second >= first)  # the first T/2 − 1 positions other than X1's
        steps = jnp.arange(padded)[:, None]
        marked = (steps == first) | (steps == second)
        ends = (steps == 0) | (steps == lengths - 1)
        inside = steps < lengths
        markers = jnp.where(marked, 1.0, jnp.where(ends, -1.0, 0.0)) * inside
        values = jax.random.uniform(key_values, (padded, batch), dtype, self.low, 1.0)
        values = jnp.where((steps == 0) & marked, self.first_value, values) * inside
        targets = self.combine(values, marked)[:, None]
        xs = jnp.stack([values, markers.astype(dtype)], axis=-1)
        return xs, {"target": targets.astype(dtype), "last": lengths - 1}

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


@dataclass(frozen=True)
class Multiplication1997(Adding1997):
    """The multiplication problem as Hochreiter & Schmidhuber (1997, Experiment 5) posed it: the
    adding problem of `Adding1997` ("Like the task in Section 5.4, except …") with values
    U[0, 1], a marked first pair's value set to 1.0, and the target X1·X2 at step L. Correct:
    |error| < 0.04 (the paper counts "absolute errors exceeding 0.04" as wrong); solved: eval
    accuracy ≥ threshold (default 0.99; the paper stops training when fewer than n_seq = 13, or
    140, of the 2000 latest sequences are wrong: 0.9935, or 0.93). Baseline: always E[X1·X2],
    MSE = Var(X1·X2)."""

    length: int
    threshold: float = 0.99

    name: ClassVar[str] = "multiplication"
    low: ClassVar[float] = 0.0
    first_value: ClassVar[float] = 1.0  # "we set X1 to 1.0"

    combine = staticmethod(product_of_marked)

    @property
    def baseline_loss(self) -> float:
        # X1·X2 is a product of two U[0, 1] (moments 1/4, 1/9) unless one of them sits on the
        # first pair (value 1): then it is one U[0, 1] (moments 1/2, 1/3).
        p_one = sum(self.first_pair_odds())
        mean = (1 - p_one) / 4 + p_one / 2
        return (1 - p_one) / 9 + p_one / 3 - mean**2
