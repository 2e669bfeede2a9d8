"""What the tasks share: the solved criterion, the refusal of a too short T, Hochreiter &
Schmidhuber's variable lengths, and a class read at the last step."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
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


def refuse_short(task) -> None:
    """ValueError when T < task.min_length (config turns it into one line about task.length)."""
    if task.length < task.min_length:
        variant = getattr(task, "variant", None)
        label = f"{task.name} ({variant})" if variant else task.name
        raise ValueError(f"{label}: length must be ≥ {task.min_length}, got {task.length}")


class VariableLength:
    """Hochreiter & Schmidhuber's (1997) lengths: L ~ U{T, …, T + ⌊T/10⌋} per sequence, zero-padded
    to T' = T + ⌊T/10⌋; the answer is read at each sequence's own last step, L − 1 (targets
    {"target": …, "last": (B,) = L − 1})."""

    reads_every_step: ClassVar[bool] = True  # outputs at every step; the loss picks step L
    targets_batch_axis: ClassVar[int] = 0

    @property
    def sequence_length(self) -> int:
        return self.length + self.length // 10

    def sample_lengths(self, key: jax.Array, batch: int) -> jax.Array:
        """L per sequence, (B,)."""
        return jax.random.randint(key, (batch,), self.length, self.sequence_length + 1)

    def final_outputs(self, outputs: jax.Array, targets: dict) -> jax.Array:
        """outputs (T', B, O) → (B, O) at each sequence's last step."""
        return outputs[targets["last"], jnp.arange(outputs.shape[1])]

    def final_targets(self, targets: dict) -> jax.Array:
        return targets["target"]


class ClassAtTheEnd(SolvedBy):
    """A class read at the last step: cross-entropy of the logits there; accuracy, argmax right;
    baseline ln C (the C classes are equally likely); solved, accuracy ≥ threshold. The task gives
    `final_outputs(outputs, targets)` (B, C) and `final_targets(targets)` (B,)."""

    solved_metric: ClassVar[str] = "eval_accuracy"  # solved when eval_accuracy ≥ threshold
    solved_relation = operator.ge

    def __post_init__(self):
        refuse_short(self)

    @property
    def baseline_loss(self) -> float:
        return math.log(self.output_size)

    def losses(self, outputs: jax.Array, targets) -> jax.Array:
        """Cross-entropy at each sequence's last step: (B,)."""
        log_probs = jax.nn.log_softmax(self.final_outputs(outputs, targets), axis=-1)
        return -jnp.take_along_axis(log_probs, self.final_targets(targets)[:, None], axis=-1)[:, 0]

    def accuracy(self, outputs: jax.Array, targets) -> jax.Array:
        """Fraction of sequences whose largest logit is the class."""
        predicted = jnp.argmax(self.final_outputs(outputs, targets), axis=-1)
        return jnp.mean(predicted == self.final_targets(targets))

    def connectivity_score(self, outputs: jax.Array, targets) -> jax.Array:
        """ŷ of the input connectivity (`core.dynamics`): the predicted class's logit at the last
        step, (B,)."""
        logits = self.final_outputs(outputs, targets)
        predicted = jax.lax.stop_gradient(jnp.argmax(logits, axis=-1))
        return jnp.take_along_axis(logits, predicted[:, None], axis=-1)[:, 0]
