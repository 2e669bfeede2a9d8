"""The path for any cell that meets the cell protocol (docs/cells.md): a plain `lax.scan` of its
`step`, differentiated by JAX.

    class MyCell:
        carry_names = ("h",)                                  # each gets a <name>_norms profile
        def init(self, key, input_size, hidden, dtype): ...   # -> params pytree
        def initial_carry(self, params, batch): ...           # -> {name: (B, H) array}
        def step(self, params, carry, x): ...                 # x: (B, I) -> new carry dict

Optional members: `prepare(params)` makes what `initial_carry` and `step` receive in place of the
params, once per sequence, outside the scan (expRNN's W_h = expm(S)); `sequence(weights, xs,
delta)` computes every step's carry at once in place of the scan (the LRU's associative scan);
`constrain(params)` and `learning_rate_scales(params)` act on the optimizer's update
(`lstm_vg.core.train`).

The per-timestep norms come from the same zero perturbations as the fast path's: δ_t[name] is
added to each state after the step made it, so ∂L/∂δ_t[name] is ∂L/∂s_t with the other states of
carry_t held fixed. A step that accepts `delta` (as the built-in cells' do) adds it where it makes
each state instead: the LSTM's c_t then also counts its path through h_t = o·tanh(c_t).
"""

from __future__ import annotations

import inspect
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np


def has_fast_path(cell) -> bool:
    """Whether the cell brings a hand-written forward/backward pair (`model.states`)."""
    return callable(getattr(cell, "forward", None)) and callable(getattr(cell, "backward", None))


def takes_delta(cell) -> bool:
    """Whether the cell's step accepts the `delta` keyword (see the module docstring)."""
    try:
        return "delta" in inspect.signature(cell.step).parameters
    except (TypeError, ValueError):
        return False


def prepared(cell, params):
    """What the cell's step reads: `cell.prepare(params)` where the cell has it, else params."""
    prepare = getattr(cell, "prepare", None)
    return params if prepare is None else prepare(params)


def step_with(cell, params, carry, x, delta):
    """carry_t from the cell's step, each state perturbed by delta[name] ({name: like carry})."""
    if delta is not None and takes_delta(cell):
        return cell.step(params, carry, x, delta=delta)
    carry = cell.step(params, carry, x)
    return carry if delta is None else {name: s + delta[name] for name, s in carry.items()}


def zero_perturbations(cell, params, length: int, batch: int) -> dict:
    """δ: {name: (T, *shape)} zeros shaped and typed like each carry entry, one per step."""
    carry = cell.initial_carry(prepared(cell, params), batch)
    return {name: jnp.zeros((length, *carry[name].shape), carry[name].dtype) for name in cell.carry_names}


def states(cell, cell_params, xs: jax.Array, perturbations, all_steps: bool, scan_unroll: int = 1):
    """hs: (T, B, H) (h_T: (B, H) alone when not `all_steps`) of the cell run over xs: (T, B, I)
    from its initial carry; JAX differentiates it (perturbations: see `zero_perturbations`)."""

    weights = prepared(cell, cell_params)
    if getattr(cell, "sequence", None) is not None:  # every step at once, equal to the scan
        hs = cell.sequence(weights, xs, perturbations)["h"]
        return hs if all_steps else hs[-1]

    def body(carry, inputs):
        x_t, delta_t = inputs
        carry = step_with(cell, weights, carry, x_t, delta_t)
        return carry, carry["h"] if all_steps else None

    carry = cell.initial_carry(weights, xs.shape[1])
    last, hs = jax.lax.scan(body, carry, (xs, perturbations), unroll=scan_unroll)
    return hs if all_steps else last["h"]


def step_residual_bytes(cell, params, batch: int, input_size: int, dtype) -> int:
    """Bytes that reverse-mode autodiff keeps for one step of `batch` sequences: the residuals
    of `jax.vjp` of the step, measured on shapes alone (`jax.eval_shape`), plus the carry."""
    x = jax.ShapeDtypeStruct((batch, input_size), dtype)

    def residuals(weights, x):
        carry = cell.initial_carry(weights, batch)
        return jax.vjp(lambda p, c: cell.step(p, c, x), weights, carry)

    out, vjp = jax.eval_shape(residuals, jax.eval_shape(partial(prepared, cell), params), x)
    leaves = jax.tree.leaves(vjp) + jax.tree.leaves(out)
    return int(sum(np.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize for leaf in leaves))
