"""The one training loop every cell and task shares: `lax.scan` over the steps of one run.

A `Trainer` holds what is static for a batch of runs (cell, task, sizes, optimizer); a
`TrainState` holds what is traced (params, optimizer state, step, PRNG key). `Trainer.chunk` is
K training steps in one scan, `Trainer.evaluate` the eval loss/accuracy and the per-timestep
gradient norms; `lstm_vg.core.batched` runs them over a leading axis of runs.

Randomness comes only from each run's root key: batch k is sampled from
fold_in(fold_in(key, DATA), k), so a run resumed at step k sees the same data it would have seen;
the eval and probe batches are fixed per run (a task with a held-out split, `pixels`, is
evaluated on fixed test examples: its `sample_eval`). The learning rate lives in the optimizer state
(`optax.inject_hyperparams`), so runs that differ only in lr or init share one compiled loop.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lstm_vg.core import autodiff, dynamics, gradients, model

OPTIMIZERS = ("adam", "rmsprop", "sgd")

# Streams derived from a run's root key with fold_in.
INIT, DATA, EVAL, PROBE, FRAME = range(5)

# Device mesh axes: runs are split over "runs"; with batch_shards > 1, each run's training batch
# is split over "batch" (see `batched.runs_sharding`).
RUNS_AXIS, BATCH_AXIS = "runs", "batch"


def shard_of_batch(*trees_and_axes, shards: int) -> list:
    """Each (tree, batch axis) → this device's 1/shards of it along that axis (its index on the
    "batch" mesh axis picks which)."""
    index = jax.lax.axis_index(BATCH_AXIS)

    def take(x, axis):
        size = x.shape[axis] // shards
        return jax.lax.dynamic_slice_in_dim(x, index * size, size, axis)

    return [jax.tree.map(partial(take, axis=axis), tree) for tree, axis in trees_and_axes]


class TrainState(NamedTuple):
    params: dict
    opt_state: optax.OptState
    step: jax.Array  # () int32: training steps taken
    key: jax.Array  # the run's root PRNG key
    diverged_at: jax.Array  # () int32: the step whose loss or update was not finite; −1 if none


def make_optimizer(name: str, learning_rate: float, clip: float, momentum: float, cell=None):
    """clip_by_global_norm(clip) (skipped when clip is 0), then adam | rmsprop | sgd(momentum),
    then, for a cell with `learning_rate_scales`, each of its parameters' update times its factor.
    The learning rate is these optimizers' last factor, so that is each parameter group at its
    own learning rate (optax.multi_transform's result, tested) while runs still hold one lr."""
    base = {
        "adam": optax.adam,
        "rmsprop": optax.rmsprop,
        "sgd": partial(optax.sgd, momentum=momentum or None),
    }[name]
    optimizer = optax.inject_hyperparams(base)(learning_rate=learning_rate)
    if hasattr(cell, "learning_rate_scales"):
        optimizer = optax.chain(optimizer, optax.stateless(partial(scale_cell_updates, cell)))
    return optax.chain(optax.clip_by_global_norm(clip), optimizer) if clip > 0 else optimizer


def scale_cell_updates(cell, updates: dict, params: dict) -> dict:
    scales = cell.learning_rate_scales(params["cell"])
    return updates | {"cell": jax.tree.map(lambda u, s: u * jnp.asarray(s, u.dtype), updates["cell"], scales)}


@dataclass(frozen=True)
class Trainer:
    """Everything static about a batch of runs; its methods are pure and act on one run."""

    cell: object  # a `cells.Cell` (with its fast path) or any cell that meets the protocol
    task: object  # a `tasks.Task`
    hidden: int
    batch: int
    chunk_steps: int
    eval_batch: int
    probe_batch: int
    optimizer: str = "adam"
    clip: float = 1.0
    momentum: float = 0.9
    scan_unroll: int = 1
    remat: int = 0  # time-block length of the backward pass's recomputation (0: none)
    batch_shards: int = 1  # > 1: each device of mesh axis "batch" takes its share of a batch
    dtype: str = "float32"
    diagnostics: tuple[str, ...] = ()  # of `dynamics.DIAGNOSTICS`, measured by `evaluate`
    lyapunov_exponents: int = 8
    connectivity_examples: int = 4

    def memory_bytes(self) -> dict[str, int]:
        """A rough upper estimate of one run's peak memory on its device, by what holds it:
        "parameters" (params, gradients, optimizer state), "training" (what the backward pass
        of a training batch keeps per step), "evaluation" (the eval batch's forward pass and
        the probe batch's backward pass). Tested against XLA's own memory analysis."""
        if not autodiff.has_fast_path(self.cell):
            return self.autodiff_memory_bytes()
        T, H, G = self.task.sequence_length, self.hidden, self.cell.gates
        C = len(self.cell.carry_names)
        size = np.dtype(self.dtype).itemsize
        I, O = self.task.input_size, self.task.output_size
        params = (I + H + 1) * G * H + (H + 1) * O

        wide = I > model.NARROW_INPUT  # then z_x is computed for all steps before the scan
        # per step, the inputs, and when the task reads every step the h_t, outputs and their
        # gradients
        inputs = 2 * I + (G * H if wide else 0)
        outputs = 2 * (H + O) if self.task.reads_every_step else 0

        def backward(batch, probed):
            # saved: carry_{t-1}, the cell's extras (at most G·H: the LSTM's gates), ∂L/∂z_t;
            # for the probe also δ_t and ∂L/∂carry_t; C·H more as a margin
            per_step = (2 * C + 2 * G + 2 * C * probed) * H + inputs + outputs
            if not self.remat:
                return T * batch * per_step
            # every step still: h and ∂L/∂h, x and ∂L/∂x, and for the probe δ and ∂L/∂carry
            kept = (2 + 2 * C * probed) * H + inputs + O
            return batch * (T * kept + -(-T // self.remat) * C * H + self.remat * per_step)

        evaluation = T * self.eval_batch * (inputs + outputs) + backward(self.probe_batch, True)
        return {"parameters": 5 * params * size,
                "training": backward(self.batch // self.batch_shards, False) * size,
                "evaluation": evaluation * size}

    def autodiff_memory_bytes(self) -> dict[str, int]:
        """`memory_bytes` for a cell on the autodiff path: T times what reverse mode keeps for
        one step (`autodiff.step_residual_bytes`), with the probe's perturbations and inputs."""
        T, I = self.task.sequence_length, self.task.input_size
        params = jax.eval_shape(lambda key: model.init(self.cell, self.task, key, self.hidden, self.dtype),
                                jax.random.key(0))
        size = np.dtype(self.dtype).itemsize
        count = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))

        def backward(batch: int, probed: bool) -> int:
            step = autodiff.step_residual_bytes(self.cell, params["cell"], batch, I, self.dtype)
            return T * (step * (2 if probed else 1) + batch * I * size)

        evaluation = T * self.eval_batch * I * size + backward(self.probe_batch, True)
        return {"parameters": 5 * count * size, "training": backward(self.batch // self.batch_shards, False),
                "evaluation": evaluation}

    @property
    def data(self):
        """The task's data set (a pytree of host arrays: `pixels`' images), or None for a task
        that samples everything from a key."""
        return getattr(self.task, "data", None)

    def with_data(self, data) -> Trainer:
        """This Trainer with its task reading `data`, the same data set as other arrays (the
        compiled functions' argument: see `batched.compile_batched`)."""
        return self if data is None else dataclasses.replace(self, task=self.task.with_data(data))

    def data_bytes(self) -> int:
        """The device memory the data set takes, once per device (whatever the runs)."""
        return sum(int(np.asarray(leaf).nbytes) for leaf in jax.tree.leaves(self.data))

    def tx(self, learning_rate: float = 1e-3):
        return make_optimizer(self.optimizer, learning_rate, self.clip, self.momentum, self.cell)

    def init_state(self, seed: int, learning_rate: float, **cell_options) -> TrainState:
        """A fresh run: params from the seed's INIT stream, optimizer state holding its lr."""
        key = jax.random.key(seed)
        params = model.init(self.cell, self.task, jax.random.fold_in(key, INIT), self.hidden, self.dtype,
                            **cell_options)
        opt_state = self.tx(learning_rate).init(params)
        return TrainState(params, opt_state, jnp.zeros((), jnp.int32), key, jnp.full((), -1, jnp.int32))

    def mean_loss(self, params: dict, xs: jax.Array, targets: jax.Array) -> jax.Array:
        outputs = model.apply(self.cell, self.task, params, xs, None, self.scan_unroll, self.remat)
        return jnp.mean(self.task.losses(outputs, targets))

    def step(self, state: TrainState) -> tuple[TrainState, dict]:
        """One optimizer step of one run on a fresh training batch.

        Arguments:
            state: the run's `TrainState` (params {"cell": …, "readout": {"w": (H, O), "b": (O,)}},
                optimizer state, step () int32, root key, diverged_at () int32). The batch,
                xs (T', batch, I) and its targets, is sampled from fold_in(fold_in(key, DATA), step).

        Returns:
            (the state after the update, metrics {"loss": (), "grad_norm": ()}): the batch's mean
            loss before the update and the global norm of its gradient before clipping.

        A run whose loss or new params are not finite is frozen at its last finite state (params
        and optimizer state stop changing) and its metrics are NaN from that step on; the other
        runs of its batch are not affected."""
        data_key = jax.random.fold_in(jax.random.fold_in(state.key, DATA), state.step)
        xs, targets = self.task.sample(data_key, self.batch, self.dtype)
        if self.batch_shards > 1:  # this device's share of the same batch, then the mean of all
            xs, targets = shard_of_batch(
                (xs, 1), (targets, self.task.targets_batch_axis), shards=self.batch_shards
            )
        loss, grads = jax.value_and_grad(self.mean_loss)(state.params, xs, targets)
        if self.batch_shards > 1:
            loss, grads = jax.lax.pmean((loss, grads), BATCH_AXIS)
        # The lr is read from opt_state, so the tx's own default lr is never used here.
        updates, opt_state = self.tx().update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if hasattr(self.cell, "constrain"):  # e.g. IndRNN's |u| ≤ 2^(1/T) after every update
            params = params | {"cell": self.cell.constrain(params["cell"])}
        finite = jnp.isfinite(loss) & all_finite(params)
        going = (state.diverged_at < 0) & finite
        params, opt_state = jax.tree.map(
            lambda new, old: jnp.where(going, new, old), (params, opt_state), (state.params, state.opt_state)
        )
        diverged_at = jnp.where((state.diverged_at < 0) & ~finite, state.step, state.diverged_at)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
        metrics = jax.tree.map(lambda m: jnp.where(going, m, jnp.nan), metrics)
        return TrainState(params, opt_state, state.step + 1, state.key, diverged_at), metrics

    def chunk(self, state: TrainState) -> tuple[TrainState, dict]:
        """`chunk_steps` training steps in one scan; metrics stacked to (chunk_steps,)."""
        return jax.lax.scan(lambda s, _: self.step(s), state, None, length=self.chunk_steps)

    def evaluate(self, state: TrainState) -> dict:
        """Eval loss/accuracy on the fixed eval batch; loss, grad norm and per-timestep gradient
        norms (see `gradients`) on the fixed probe batch."""
        # a task with a held-out split (pixels) evaluates on it: its `sample_eval`
        sample_eval = getattr(self.task, "sample_eval", self.task.sample)
        xs, targets = sample_eval(jax.random.fold_in(state.key, EVAL), self.eval_batch, self.dtype)
        outputs = model.apply(self.cell, self.task, state.params, xs, None, self.scan_unroll, self.remat)
        xs_probe, targets_probe = self.task.sample(
            jax.random.fold_in(state.key, PROBE), self.probe_batch, self.dtype
        )
        loss, grads, norms = gradients.loss_grads_and_norms(
            self.cell, self.task, state.params, xs_probe, targets_probe, self.scan_unroll, self.remat
        )
        return {
            "diverged_at": state.diverged_at,
            "eval_loss": jnp.mean(self.task.losses(outputs, targets)),
            "eval_accuracy": self.task.accuracy(outputs, targets),
            "probe_loss": loss,
            "probe_grad_norm": optax.tree.norm(grads),
            **norms,
            **self.dynamics(state, xs_probe, targets_probe),
        }

    def dynamics(self, state: TrainState, xs: jax.Array, targets) -> dict:
        """The `diagnostics` on the probe batch xs: (T', B, I) (docs/results-format.md,
        dynamics.npz): "lyapunov" (k,); "recurrent_matrix" (H, H); "connectivity" (T',) (the
        mean over the batch), "connectivity_examples" (E, T') and their inputs
        "connectivity_inputs" (E, T', I); "keep_gate" (H,). A cell without a recurrent matrix or
        a keep gate has no entry for it."""
        out, cell_params = {}, state.params["cell"]
        if "lyapunov" in self.diagnostics:
            frame_key = jax.random.fold_in(state.key, FRAME)
            out["lyapunov"] = dynamics.lyapunov_exponents(self.cell, cell_params, xs, self.lyapunov_exponents,
                                                          frame_key)
        if "recurrent_matrix" in self.diagnostics:
            matrix = dynamics.recurrent_matrix(self.cell, cell_params)
            out |= {} if matrix is None else {"recurrent_matrix": matrix}
        if "connectivity" in self.diagnostics:
            connectivity = dynamics.input_connectivity(self.cell, self.task, state.params, xs, targets)
            examples = min(self.connectivity_examples, xs.shape[1])
            out |= {"connectivity": jnp.mean(connectivity, axis=1),
                    "connectivity_examples": connectivity[:, :examples].T,
                    "connectivity_inputs": jnp.swapaxes(xs[:, :examples], 0, 1)}
        if "gates" in self.diagnostics:
            gates = dynamics.keep_gate_means(self.cell, cell_params, xs)
            out |= {} if gates is None else {"keep_gate": gates}
        return out


def all_finite(tree) -> jax.Array:
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))
