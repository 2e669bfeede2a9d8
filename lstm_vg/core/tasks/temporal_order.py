"""The temporal order problem (definition: the package docstring, `lstm_vg.core.tasks`): as
Pascanu et al.'s code poses it and as Hochreiter & Schmidhuber's Experiments 6a and 6b."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from lstm_vg.core.tasks.base import ClassAtTheEnd, VariableLength


def order_symbols(key: jax.Array, length: int, batch: int, windows) -> tuple[jax.Array, jax.Array]:
    """A temporal order sequence: symbols (length, B) int, a distractor 2…5 at every step but at
    one uniform step of each [low, high) window of `windows`, which gets a relevant symbol 0 or 1;
    and the class (B,), those symbols as a binary number, the first the most significant bit."""
    key_distractors, key_steps, key_relevant = jax.random.split(key, 3)
    low = jnp.asarray([w[0] for w in windows])[:, None]
    high = jnp.asarray([w[1] for w in windows])[:, None]
    positions = jax.random.randint(key_steps, (len(windows), batch), low, high)
    relevant = jax.random.randint(key_relevant, (len(windows), batch), 0, 2)
    symbols = jax.random.randint(key_distractors, (length, batch), 2, 6)
    steps = jnp.arange(length)[:, None]
    for position, symbol in zip(positions, relevant, strict=True):
        symbols = jnp.where(steps == position, symbol, symbols)
    bits = 2 ** jnp.arange(len(windows) - 1, -1, -1)[:, None]
    return symbols, jnp.sum(relevant * bits, axis=0)


@dataclass(frozen=True)
class TemporalOrder(ClassAtTheEnd):
    """Pascanu et al.'s temporal order problem (the package docstring). Solved: eval accuracy ≥
    threshold, default 0.99 as for copy; Pascanu et al.'s RNN.py stops, "Problem solved", when
    its validation error, in percent over 10 000 sequences, is below 0.0001, i.e. when none is
    wrong: `task.threshold: 1.0` on the eval batch."""

    length: int
    threshold: float = 0.99

    name: ClassVar[str] = "temporal_order"
    input_size: ClassVar[int] = 6  # A, B, then the distractors c, d, e, f
    output_size: ClassVar[int] = 4
    reads_every_step: ClassVar[bool] = False  # the readout sees h_T only
    targets_batch_axis: ClassVar[int] = 0  # targets (B,) class indices
    min_length: ClassVar[int] = 10  # ⌊T/10⌋ ≥ 1: both windows non-empty (then also disjoint)

    @staticmethod
    def windows(length: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """tempOrder.py's [low, high) windows of p0 and p1."""
        tenth, half = length // 10, length // 2
        return (tenth, 2 * tenth), (half, half + tenth)

    @property
    def sequence_length(self) -> int:
        return self.length

    def sample(self, key: jax.Array, batch: int, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
        """xs: (T, B, 6) one-hot, targets: (B,) class indices."""
        symbols, classes = order_symbols(key, self.length, batch, self.windows(self.length))
        return jax.nn.one_hot(symbols, self.input_size, dtype=dtype), classes

    def final_outputs(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        return outputs  # (B, 4), the readout of h_T

    def final_targets(self, targets: jax.Array) -> jax.Array:
        return targets


@dataclass(frozen=True)
class TemporalOrder1997(VariableLength, ClassAtTheEnd):
    """Hochreiter & Schmidhuber (1997), Experiment 6a, scaled with T so that T = 100 is the paper's.

    Eight one-hot symbols: the relevant X, Y (channels 0, 1), the distractors a, b, c, d (2–5),
    E (6) and B (7). Length L ~ U{T, …, T + ⌊T/10⌋} per sequence (the paper: 100 to 110), padded
    with all-zero inputs to T' = T + ⌊T/10⌋. "The sequence starts with an E, ends with a B (the
    trigger symbol)"; X or Y at one uniform step t1 ∈ [⌊T/10⌋, ⌊T/5⌋] and one t2 ∈ [⌊T/2⌋,
    ⌊6T/10⌋] (the paper: t1 between 10 and 20, t2 between 50 and 60), a uniform distractor at
    every other step. Classes Q, R, S, U for XX, XY, YX, YY: 0, 1, 2, 3 (2·s1 + s2, X = 0).
    The paper does not say whether its positions count from 0 or 1, nor whether "between"
    includes the ends: read here as 0-based steps, both ends included (as `Adding1997` reads
    the lengths). Its outputs are sigmoid units trained on squared error, a sequence right when
    every output is within 0.3 of the one-hot target; here logits trained on cross-entropy, a
    sequence right when the argmax is the class, solved at eval accuracy ≥ threshold (default
    0.99; the paper's nets got at most 3 of 2560 test sequences wrong, 0.9988).

    Variant `hochreiter1997_6b` (`TemporalOrder1997b`): Experiment 6b.
    """

    length: int
    threshold: float = 0.99

    name: ClassVar[str] = "temporal_order"
    variant: ClassVar[str] = "hochreiter1997"
    percent_windows: ClassVar[tuple] = ((10, 20), (50, 60))  # at T = 100, the paper's steps
    input_size: ClassVar[int] = 8  # X, Y, a, b, c, d, E, B
    output_size: ClassVar[int] = 4
    start: ClassVar[int] = 6  # E, at the first step
    trigger: ClassVar[int] = 7  # B, at step L
    min_length: ClassVar[int] = 10  # ⌊T/10⌋ ≥ 1: t1 never meets E (disjoint windows, tested)

    @classmethod
    def windows(cls, length: int) -> tuple[tuple[int, int], ...]:
        """The [low, high) steps of each relevant symbol: [⌊p·T/100⌋, ⌊q·T/100⌋ + 1) for the
        paper's windows [p, q]."""
        return tuple((length * low // 100, length * high // 100 + 1) for low, high in cls.percent_windows)

    def sample(self, key: jax.Array, batch: int, dtype=jnp.float32) -> tuple[jax.Array, dict]:
        """xs: (T', B, 8) one-hot (zeros past L), targets {"target": (B,) classes, "last": L − 1}."""
        key_symbols, key_lengths = jax.random.split(key)
        padded = self.sequence_length
        lengths = self.sample_lengths(key_lengths, batch)
        symbols, classes = order_symbols(key_symbols, padded, batch, self.windows(self.length))
        steps = jnp.arange(padded)[:, None]
        symbols = jnp.where(steps == 0, self.start, jnp.where(steps == lengths - 1, self.trigger, symbols))
        xs = jax.nn.one_hot(symbols, self.input_size, dtype=dtype) * (steps < lengths)[..., None]
        return xs, {"target": classes, "last": lengths - 1}


@dataclass(frozen=True)
class TemporalOrder1997b(TemporalOrder1997):
    """Hochreiter & Schmidhuber (1997), Experiment 6b: as 6a (`TemporalOrder1997`) with three
    relevant symbols, at t1 ∈ [⌊T/10⌋, ⌊T/5⌋], t2 ∈ [⌊33T/100⌋, ⌊43T/100⌋], t3 ∈ [⌊66T/100⌋,
    ⌊76T/100⌋] (the paper: 10–20, 33–43, 66–76), and 8 classes Q, R, S, U, V, A, B, C for XXX,
    XXY, XYX, XYY, YXX, YXY, YYX, YYY: 0 … 7 (4·s1 + 2·s2 + s3). Baseline ln 8."""

    length: int
    threshold: float = 0.99

    variant: ClassVar[str] = "hochreiter1997_6b"
    percent_windows: ClassVar[tuple] = ((10, 20), (33, 43), (66, 76))
    output_size: ClassVar[int] = 8
