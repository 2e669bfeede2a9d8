"""A batch of runs on one or several devices: the runs stacked along a leading axis, each
device's share trained with `lax.map` (CPU) or `vmap` (GPU/TPU)::

    chunk    = jit(map(trainer.chunk))      # K training steps of every run in one compiled call
    evaluate = jit(map(trainer.evaluate))   # eval loss/accuracy + per-timestep gradient norms

With several devices the runs axis is split over them (`runs_sharding`, `shard_map`); spare
devices can split each run's training batch (the mesh's "batch" axis). A task's data set
(`pixels`' images) is an argument of both, bound by `WithData`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lstm_vg.core.train import BATCH_AXIS, RUNS_AXIS, Trainer, TrainState


def stack(states: list[TrainState]) -> TrainState:
    """Runs → one TrainState with a leading runs axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def pad_runs(states: TrainState, multiple: int) -> TrainState:
    """Repeat the last run until the number of runs is a multiple of `multiple` (the padding
    runs train like the one they copy; their results are dropped)."""
    runs = states.step.shape[0]
    missing = -runs % multiple
    return jax.tree.map(lambda a: jnp.concatenate([a] + [a[-1:]] * missing), states) if missing else states


def runs_sharding(devices: Sequence[jax.Device], batch_shards: int = 1) -> NamedSharding:
    """The leading runs axis split evenly over len(devices) / batch_shards groups of devices; in
    each group every device holds the same runs and (Trainer.batch_shards) its share of each
    training batch. A mesh of shape (runs, batch)."""
    grid = np.asarray(devices).reshape(-1, batch_shards)
    return NamedSharding(Mesh(grid, (RUNS_AXIS, BATCH_AXIS)), PartitionSpec(RUNS_AXIS))


def fenced(fn):
    """fn with optimisation barriers around it: XLA inlines a `lax.map` of one run, and without
    them would fuse the run's ops with their surroundings differently (other rounding) than
    inside a loop of several runs."""
    barrier = jax.lax.optimization_barrier
    return lambda *args: barrier(fn(*barrier(args)))


@dataclass(frozen=True)
class WithData:
    """A compiled function of (states, data) with the data bound: called, lowered and compiled on
    the states alone (`f(states)`, `f.lower(states).compile()`); anything else is `fn`'s."""

    fn: Callable  # jitted, or its Lowered or Compiled
    data: Any

    def __call__(self, states):
        return self.fn(states, self.data)

    def lower(self, states) -> WithData:
        return WithData(self.fn.lower(states, self.data), self.data)

    def compile(self) -> WithData:
        return WithData(self.fn.compile(), self.data)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.fn, name)


def compile_batched(trainer: Trainer, sharding: NamedSharding | None = None,
                    vectorize: bool | None = None) -> tuple[WithData, WithData]:
    """(chunk, evaluate) over a leading runs axis, each jit-compiled once for this Trainer.

    The runs on one device are vmapped (`vectorize`, the default on GPU/TPU, where batching is
    what fills the device) or run one after another with `lax.map` (the default on CPU, where
    it is faster and each run's numbers do not depend on how many runs share the device). With
    a `runs_sharding` every device trains its share of the runs (place the states there first).

    The task's data set (`Trainer.data`: pixels' images, uint8) is put on the devices once, whole
    on each, and passed to both functions as an argument: a closed-over array would be compiled
    into each as a constant (for MNIST, 47 MB: slower to compile, and a copy in each
    executable; docs/architecture.md).
    """
    vectorize = jax.default_backend() != "cpu" if vectorize is None else vectorize

    def over_runs(method: str):
        def fn(states, data):
            run = getattr(trainer.with_data(data), method)
            return (jax.vmap(run) if vectorize else partial(jax.lax.map, fenced(run)))(states)

        if sharding is None:
            return fn
        specs = (PartitionSpec(RUNS_AXIS), PartitionSpec())  # the data whole on every device
        return jax.shard_map(fn, mesh=sharding.mesh, in_specs=specs, out_specs=PartitionSpec(RUNS_AXIS),
                             check_vma=False)

    data = jax.device_put(trainer.data, None if sharding is None else NamedSharding(sharding.mesh,
                                                                                   PartitionSpec()))
    return (WithData(jax.jit(over_runs("chunk"), donate_argnums=0), data),
            WithData(jax.jit(over_runs("evaluate")), data))
