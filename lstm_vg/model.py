"""A cell unrolled over time with `lax.scan`, plus a linear readout.

Model params: ``{"cell": cell params, "readout": {"w": (H, O), "b": (O,)}}``.

The recurrence has a hand-written backward pass (`states`, a `jax.custom_vjp` whose reverse scan
uses each cell's `backward` step). ``unroll`` optionally adds a perturbation δ_t to each state as the cell makes it (h_t, and c_t
before h_t reads it). The perturbations are zero, so the forward pass is unchanged, but
∂L/∂δ_t = ∂L/∂h_t (and ∂L/∂c_t, through both h_t and c_{t+1}): the gradient with respect to
the state at every timestep falls out of the one ordinary backward pass.
"""

from __future__ import annotations

from functools import partial

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
    remat: int = 0,
) -> jax.Array:
    """Hidden states hs: (T, B, H) for time-major xs: (T, B, I) from a zero carry; h_T: (B, H)
    alone when not `all_steps`. `remat` > 0: see `states`."""
    hs = states(cell, scan_unroll, remat, params["cell"], xs, perturbations)
    return hs if all_steps else hs[-1]


def input_projection(cell_params: dict, xs: jax.Array) -> jax.Array:
    """z_x = x_t @ w_x + b for every t: one (T·B, I) @ (I, G·H) matmul, outside the loop."""
    return matmul(xs, cell_params["w_x"]) + cell_params["b"]


def forward_scan(cell: Cell, w_h, z_x, perturbations, scan_unroll: int, save: bool, carry=None):
    """Run the recurrence over z_x: (T, B, G·H) from `carry` (zero by default); returns the last
    carry and the stacked h_t, or with `save` every carry entry and what `cell.backward` needs."""
    T, B, _ = z_x.shape

    def body(carry, inputs):
        z_x_t, delta_t = inputs
        carry, extras = cell.forward(w_h, carry, z_x_t, delta_t)
        return carry, ({**carry, **extras} if save else carry["h"])

    carry = cell.initial_carry(B, w_h.shape[0], z_x.dtype) if carry is None else carry
    return jax.lax.scan(body, carry, (z_x, perturbations), unroll=scan_unroll)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def states(cell: Cell, scan_unroll: int, remat: int, cell_params: dict, xs, perturbations):
    """hs: (T, B, H), the cell run over xs: (T, B, I) from a zero carry, with a hand-written
    backward pass (`states_backward`); the perturbations' cotangents are ∂L/∂h_t (and ∂L/∂c_t).

    With `remat` = K > 0 the forward pass keeps only the carry at every K-th step and the
    backward pass recomputes one block of K steps at a time: memory O(T/K + K) states instead
    of O(T), for one more forward pass."""
    z_x = input_projection(cell_params, xs)
    return forward_scan(cell, cell_params["w_h"], z_x, perturbations, scan_unroll, save=False)[1]


def blocks(tree, size: int):
    """Each (T, …) leaf → (⌈T/size⌉, size, …), zero-padded at the end. Zero steps after T leave
    h_1 … h_T as they are and, with a zero cotangent, send nothing back."""

    def split(x):
        padded = jnp.pad(x, [(0, -x.shape[0] % size)] + [(0, 0)] * (x.ndim - 1))
        return padded.reshape(-1, size, *x.shape[1:])

    return jax.tree.map(split, tree)


def unblock(tree, length: int):
    """The inverse of `blocks`: (N, size, …) leaves → their first `length` steps."""
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:])[:length], tree)


def states_forward(cell: Cell, scan_unroll: int, remat: int, cell_params, xs, perturbations):
    w_h = cell_params["w_h"]
    if not remat:
        z_x = input_projection(cell_params, xs)
        saved = forward_scan(cell, w_h, z_x, perturbations, scan_unroll, save=True)[1]
        return saved["h"], (cell_params, xs, perturbations, saved)

    def block(carry, inputs):  # one block of steps from its inputs; keep only its first carry
        xs_k, delta_k = inputs
        z_x_k = input_projection(cell_params, xs_k)
        end, hs = forward_scan(cell, w_h, z_x_k, delta_k, scan_unroll, save=False, carry=carry)
        return end, (carry, hs)

    zero = cell.initial_carry(xs.shape[1], w_h.shape[0], xs.dtype)
    _, (starts, hs) = jax.lax.scan(block, zero, (blocks(xs, remat), blocks(perturbations, remat)))
    return unblock(hs, xs.shape[0]), (cell_params, xs, perturbations, starts)


def reverse(cell: Cell, w_h, saved, start: Carry, d_hs, d_carry: Carry, with_states: bool, scan_unroll):
    """Backpropagation through one stretch of steps saved by `forward_scan(save=True)` from
    carry `start`: one reverse scan carries ∂L/∂carry and emits ∂L/∂z_t; the recurrent weights'
    gradient Σ_t h_{t−1}ᵀ ∂L/∂z_t is one matmul after the loop (autodiff of the forward scan
    would accumulate it step by step inside the loop)."""
    previous = {n: jnp.concatenate([start[n][None], saved[n][:-1]]) for n in cell.carry_names}

    def body(d_carry, inputs):
        saved_t, previous_t, d_h_t = inputs
        d_carry = {**d_carry, "h": d_carry["h"] + d_h_t}  # + what the readout sends to h_t
        d_previous, d_z_t, d_states_t = cell.backward(w_h, saved_t, previous_t, d_carry)
        return d_previous, (d_z_t, d_states_t if with_states else None)

    inputs = (saved, previous, d_hs)
    d_carry, (d_z, d_states) = jax.lax.scan(body, d_carry, inputs, reverse=True, unroll=scan_unroll)
    d_w_h = jnp.einsum("tbh,tbg->hg", previous["h"], d_z, precision=jax.lax.Precision.HIGHEST)
    return d_carry, d_z, d_states, d_w_h


def input_gradients(cell_params: dict, xs, d_z) -> tuple[dict, jax.Array]:
    """The input projection's backward pass over a stretch of steps: ({"w_x": Σ_t x_tᵀ ∂L/∂z_t,
    "b": Σ_t ∂L/∂z_t}, ∂L/∂x_t)."""
    highest = jax.lax.Precision.HIGHEST
    d_params = {"w_x": jnp.einsum("tbi,tbg->ig", xs, d_z, precision=highest), "b": jnp.sum(d_z, axis=(0, 1))}
    return d_params, jnp.einsum("tbg,ig->tbi", d_z, cell_params["w_x"], precision=highest)


def states_backward(cell: Cell, scan_unroll: int, remat: int, residuals, d_hs: jax.Array):
    cell_params, xs, perturbations, saved = residuals
    w_h, with_states = cell_params["w_h"], perturbations is not None
    T, B, H = d_hs.shape
    zero = cell.initial_carry(B, H, d_hs.dtype)
    if not remat:
        _, d_z, d_states, d_w_h = reverse(cell, w_h, saved, zero, d_hs, zero, with_states, scan_unroll)
        d_params, d_xs = input_gradients(cell_params, xs, d_z)
        return d_params | {"w_h": d_w_h}, d_xs, d_states

    def block(carry, inputs):  # recompute one block's forward pass, reverse it, sum its gradients
        d_carry, d_params = carry
        xs_k, delta_k, start_k, d_hs_k = inputs
        z_x_k = input_projection(cell_params, xs_k)
        saved_k = forward_scan(cell, w_h, z_x_k, delta_k, scan_unroll, save=True, carry=start_k)[1]
        d_carry, d_z, d_states, d_w_h = reverse(
            cell, w_h, saved_k, start_k, d_hs_k, d_carry, with_states, scan_unroll
        )
        d_block, d_xs = input_gradients(cell_params, xs_k, d_z)
        d_params = jax.tree.map(jnp.add, d_params, d_block | {"w_h": d_w_h})
        return (d_carry, d_params), (d_xs, d_states)

    # Only O(T·I) inputs and the block-start carries live across the loop; ∂L/∂z stays per block.
    d_params = jax.tree.map(jnp.zeros_like, cell_params)
    inputs = (blocks(xs, remat), blocks(perturbations, remat), saved, blocks(d_hs, remat))
    (_, d_params), (d_xs, d_states) = jax.lax.scan(block, (zero, d_params), inputs, reverse=True)
    return d_params, *unblock((d_xs, d_states), T)


states.defvjp(states_forward, states_backward)


def apply(cell: Cell, task, params: dict, xs: jax.Array, perturbations=None, scan_unroll: int = 1,
          remat: int = 0):
    """Task outputs: (T', B, O) when the task reads every step, else (B, O) from h_T."""
    h = unroll(cell, params, xs, perturbations, scan_unroll, task.reads_every_step, remat)
    return matmul(h, params["readout"]["w"]) + params["readout"]["b"]

