"""The copy task (definition: the package docstring, `lstm_vg.core.tasks`)."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from lstm_vg.core.tasks.base import SolvedBy


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
