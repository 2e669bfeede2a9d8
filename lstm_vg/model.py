"""A cell unrolled over time with `lax.scan`, plus a linear readout.

Model params: ``{"cell": cell params, "readout": {"w": (H, O), "b": (O,)}}``.

``unroll`` optionally adds a perturbation δ_t to each state as the cell makes it (h_t, and c_t
before h_t reads it). The perturbations are zero, so the forward pass is unchanged, but
∂L/∂δ_t = ∂L/∂h_t (and ∂L/∂c_t, through both h_t and c_{t+1}): the gradient with respect to
the state at every timestep falls out of the one ordinary backward pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstm_vg.cells import Carry, Cell, glorot_uniform, matmul


def init(
    cell: Cell, task, key: jax.Array, hidden: int, dtype=jnp.float32, **cell_options
) -> dict:
    """Cell params (see `Cell.init`) and a Glorot-uniform readout with zero bias."""
    key_cell, key_readout = jax.random.split(key)
    return {
        "cell": cell.init(key_cell, task.input_size, hidden, dtype=dtype, **cell_options),
        "readout": {
            "w": glorot_uniform(key_readout, hidden, task.output_size, dtype),
            "b": jnp.zeros((task.output_size,), dtype),
        },
    }


def zero_perturbations(cell: Cell, length: int, batch: int, hidden: int, dtype) -> Carry:
    """δ: {name: (T, B, H)} zeros, one per carry entry."""
    return {name: jnp.zeros((length, batch, hidden), dtype) for name in cell.carry_names}


def unroll(
    cell: Cell,
    params: dict,
    xs: jax.Array,
    perturbations: Carry | None = None,
    scan_unroll: int = 1,
    all_steps: bool = True,
) -> jax.Array:
    """Hidden states hs: (T, B, H) for time-major xs: (T, B, I) from a zero carry; h_T: (B, H)
    alone when not `all_steps` (then the scan stacks nothing it doesn't have to)."""
    cell_params = params["cell"]
    T, B, _ = xs.shape
    H = cell_params["w_h"].shape[0]
    # The input projection has no time dependency: one (T·B, I) @ (I, G·H) matmul, out of the loop.
    z_x = matmul(xs, cell_params["w_x"]) + cell_params["b"]

    def body(carry, inputs):
        z_x_t, delta_t = inputs
        carry = cell.recur(cell_params, carry, z_x_t, delta_t)
        return carry, carry["h"] if all_steps else None

    carry = cell.initial_carry(B, H, xs.dtype)
    carry, hs = jax.lax.scan(body, carry, (z_x, perturbations), unroll=scan_unroll)
    return hs if all_steps else carry["h"]


def apply(cell: Cell, task, params: dict, xs: jax.Array, perturbations=None, scan_unroll: int = 1):
    """Task outputs: (T', B, O) when the task reads every step, else (B, O) from h_T."""
    h = unroll(cell, params, xs, perturbations, scan_unroll, all_steps=task.reads_every_step)
    return matmul(h, params["readout"]["w"]) + params["readout"]["b"]

