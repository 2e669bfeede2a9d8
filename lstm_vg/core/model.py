"""A cell unrolled over time with `lax.scan`, plus a linear readout.

Model params: ``{"cell": cell params, "readout": {"w": (H, O), "b": (O,)}}``.

The recurrence has a hand-written backward pass (`states`, a `jax.custom_vjp` whose reverse scan
uses each cell's `backward` step). Each step's pre-activation is one matmul,
z_t = [h_{t-1}, x_t, 1] @ [w_h; w_x; b], and the saved u_t = [h_{t-1}, x_t, 1] give every cell
weight's gradient in one more matmul after the reverse scan (wide inputs are projected before
the loop instead, see `NARROW_INPUT`). ``apply`` optionally adds a perturbation δ_t to each state
as the cell makes it (h_t, and c_t before h_t reads it). The perturbations are zero, so the
forward pass is unchanged, but ∂L/∂δ_t = ∂L/∂h_t (and ∂L/∂c_t, through both h_t and c_{t+1}):
the gradient with respect to the state at every timestep falls out of the one ordinary
backward pass.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from lstm_vg.core import autodiff
from lstm_vg.core.cells import Carry, Cell, glorot_uniform, matmul


def init(cell, task, key: jax.Array, hidden: int, dtype=jnp.float32, **init_options) -> dict:
    """Cell params (`cell.init(key, I, H, dtype, **init_options)`; the built-in cells take their
    init options here, a user's cell takes none) and a Glorot-uniform readout with zero bias."""
    key_cell, key_readout = jax.random.split(key)
    return {
        "cell": cell.init(key_cell, task.input_size, hidden, jnp.dtype(dtype), **init_options),
        "readout": {
            "w": glorot_uniform(key_readout, hidden, task.output_size, dtype),
            "b": jnp.zeros((task.output_size,), dtype),
        },
    }



# Inputs this narrow are projected inside the scan: z_t = [h_{t-1}, x_t, 1] @ [w_h; w_x; b] is
# one matmul per step. That beats one (T·B, I) @ (I, G·H) matmul before the loop, which writes z_x
# for every step to memory only for the loop to read it back (measured on a 2-core CPU at B=64,
# H=128: the forward pass about 10 % faster at I = 2 and 10, even at 32, 15 % slower at 128).
NARROW_INPUT = 16


def input_projection(weights: jax.Array, hidden: int, xs: jax.Array) -> jax.Array:
    """z_x = [x, 1] @ weights[H:], the input's share of the pre-activation: (…, I) → (…, G·H)."""
    return matmul(xs, weights[hidden:-1]) + weights[-1]


def forward_scan(cell: Cell, cell_params: dict, xs, perturbations, scan_unroll: int, save: bool,
                 emit_h: bool = True, carry=None):
    """Run the recurrence over xs: (T, B, I) from `carry` (zero by default) → (the last carry,
    per step: {"h": h_t} when `emit_h`, and with `save` what the backward pass needs besides
    carry_t: {"u": u_t = [h_{t-1}, x_t, 1] (B, H + I + 1), "previous": carry_{t-1} but h,
    "extras": the cell's extras})."""
    _, B, I = xs.shape
    narrow = I <= NARROW_INPUT
    weights = cell.stack(cell_params)
    hidden = cell_params["w_h"].shape[0]
    z_x = None if narrow else input_projection(weights, hidden, xs)
    ones = jnp.ones((B, 1), xs.dtype)

    def body(carry, inputs):
        x_t, z_x_t, delta_t = inputs
        u_t = jnp.concatenate([carry["h"], x_t, ones], axis=1)
        z_t = matmul(u_t, weights) if narrow else z_x_t + matmul(carry["h"], weights[:hidden])
        after, extras = cell.forward(carry, z_t, delta_t)
        out = {"h": after["h"]} if emit_h else {}
        if save:
            out |= {"u": u_t, "previous": {n: carry[n] for n in carry if n != "h"}, "extras": extras}
        return after, out

    carry = cell.zero_carry(B, hidden, xs.dtype) if carry is None else carry
    return jax.lax.scan(body, carry, (xs, z_x, perturbations), unroll=scan_unroll)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def states(cell: Cell, scan_unroll: int, remat: int, all_steps: bool, cell_params: dict, xs,
           perturbations):
    """The cell run over the inputs from a zero carry, with a hand-written backward pass
    (`states_forward`, `states_backward`).

    Arguments:
        cell, scan_unroll, remat, all_steps: static. With `remat` = K > 0 the forward pass keeps
            only the carry at every K-th step and the backward pass recomputes one block of K
            steps at a time: memory O(T/K + K) states instead of O(T), for one more forward pass.
        cell_params: {"w_x": (I, G·H), "w_h": (H, G·H), "b": (G·H,)}.
        xs: (T, B, I), time-major inputs.
        perturbations: {name: (T, B, H)} zeros, one per carry entry, or None. Their cotangents
            are ∂L/∂h_t (and ∂L/∂c_t): the per-timestep state gradients.

    Returns:
        hs: (T, B, H), every h_t; or h_T: (B, H) alone when not `all_steps`.
    """
    last, ys = forward_scan(cell, cell_params, xs, perturbations, scan_unroll, False, all_steps)
    return ys["h"] if all_steps else last["h"]


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


def states_forward(cell: Cell, scan_unroll: int, remat: int, all_steps: bool, cell_params, xs,
                   perturbations):
    """`states`'s output and its residuals (cell_params, xs, perturbations, saved, last carry).

    Without remat `saved` holds, per step, what `forward_scan(save=True)` emits: u_t (T, B,
    H + I + 1), carry_{t-1} but h ({name: (T, B, H)}) and the cell's extras; with remat it holds
    only the carry each block of K steps starts from ({name: (⌈T/K⌉, B, H)}) and `last` is None.
    """
    if not remat:
        last, ys = forward_scan(cell, cell_params, xs, perturbations, scan_unroll, True, all_steps)
        out = ys.pop("h") if all_steps else last["h"]
        return out, (cell_params, xs, perturbations, ys, last)

    def block(carry, inputs):  # one block of steps from its inputs; keep only its first carry
        xs_k, delta_k = inputs
        end, ys = forward_scan(cell, cell_params, xs_k, delta_k, scan_unroll, save=False, carry=carry)
        return end, (carry, ys["h"])

    zero = cell.zero_carry(xs.shape[1], cell_params["w_h"].shape[0], xs.dtype)
    _, (starts, hs) = jax.lax.scan(block, zero, (blocks(xs, remat), blocks(perturbations, remat)))
    # Padding steps run past T, so h_T is read from the steps, not from the last carry.
    hs = unblock(hs, xs.shape[0])
    return (hs if all_steps else hs[-1]), (cell_params, xs, perturbations, starts, None)


def weight_gradients(u: jax.Array, d_z: jax.Array) -> jax.Array:
    """∂L/∂(stacked weights) = Σ_t u_tᵀ ∂L/∂z_t over the saved u_t = [h_{t-1}, x_t, 1]: (T, B,
    H+I+1), one (T·B)-contracted matmul as the arrays lie (no transposed copy is made); the cell's
    `unstack` turns it into its params' gradients."""
    u, d_z = u.reshape(-1, u.shape[-1]), d_z.reshape(-1, d_z.shape[-1])
    return jax.lax.dot_general(u, d_z, (((0,), (0,)), ((), ())), precision=jax.lax.Precision.HIGHEST)


def input_gradients(weights: jax.Array, hidden: int, d_z: jax.Array) -> jax.Array:
    """∂L/∂x_t = ∂L/∂z_t @ (the input rows of the stacked weights)ᵀ: (T, B, I)."""
    return jnp.einsum("tbg,ig->tbi", d_z, weights[hidden:-1], precision=jax.lax.Precision.HIGHEST)


def reverse(cell: Cell, w_h, saved, end: Carry, d_hs, d_carry: Carry, with_states: bool, scan_unroll):
    """Backpropagation through one stretch of steps saved by `forward_scan(save=True)` that ended
    at carry `end`: one reverse scan carries ∂L/∂carry (and carry_t, the state the step made)
    and emits ∂L/∂z_t, from which `weight_gradients` are one matmul after the loop (autodiff of
    the forward scan would accumulate them step by step inside it). d_hs: (T, B, H), what
    reaches each h_t from outside, or None when nothing does."""
    hidden = w_h.shape[0]

    def body(carry, inputs):
        d_carry, after = carry
        u_t, previous_t, extras_t, d_h_t = inputs
        previous_t = previous_t | {"h": u_t[:, :hidden]}
        if d_h_t is not None:  # + what the readout sends to h_t
            d_carry = {**d_carry, "h": d_carry["h"] + d_h_t}
        d_previous, d_z_t, d_states_t = cell.backward(w_h, extras_t, previous_t, after, d_carry)
        return (d_previous, previous_t), (d_z_t, d_states_t if with_states else None)

    inputs = (saved["u"], saved["previous"], saved["extras"], d_hs)
    (d_carry, _), (d_z, d_states) = jax.lax.scan(
        body, (d_carry, end), inputs, reverse=True, unroll=scan_unroll
    )
    return d_carry, d_z, d_states


def states_backward(cell: Cell, scan_unroll: int, remat: int, all_steps: bool, residuals, d_out):
    """Backpropagation through time from `states_forward`'s residuals.

    Arguments:
        d_out: ∂L/∂hs (T, B, H), or ∂L/∂h_T (B, H) when not `all_steps`.

    Returns:
        (∂L/∂cell_params (the params' shapes), ∂L/∂xs (T, B, I), ∂L/∂perturbations ({name:
        (T, B, H)}, or None without perturbations)).
    """
    cell_params, xs, perturbations, saved, last = residuals
    with_states = perturbations is not None
    T, B, _ = xs.shape
    H = cell_params["w_h"].shape[0]
    weights = cell.stack(cell_params)
    w_h = weights[:H]  # the recurrent rows, (H, G·H)
    zero = cell.zero_carry(B, H, xs.dtype)
    if not remat:  # d_out reaches every h_t, or h_T only: then it starts the reverse scan
        d_hs, d_carry = (d_out, zero) if all_steps else (None, zero | {"h": d_out})
        _, d_z, d_states = reverse(cell, w_h, saved, last, d_hs, d_carry, with_states, scan_unroll)
        d_weights = weight_gradients(saved["u"], d_z)
        return cell.unstack(d_weights, H), input_gradients(weights, H, d_z), d_states

    def block(carry, inputs):  # recompute one block's forward pass, reverse it, sum its gradients
        d_carry, d_weights = carry
        xs_k, delta_k, start_k, d_hs_k = inputs
        end_k, saved_k = forward_scan(cell, cell_params, xs_k, delta_k, scan_unroll, save=True,
                                      emit_h=False, carry=start_k)
        d_carry, d_z, d_states = reverse(cell, w_h, saved_k, end_k, d_hs_k, d_carry, with_states,
                                         scan_unroll)
        d_weights = d_weights + weight_gradients(saved_k["u"], d_z)
        return (d_carry, d_weights), (input_gradients(weights, H, d_z), d_states)

    # Only O(T·I) inputs and the block-start carries live across the loop; ∂L/∂z stays per block.
    d_hs = d_out if all_steps else jnp.zeros((T, *d_out.shape), d_out.dtype).at[-1].set(d_out)
    inputs = (blocks(xs, remat), blocks(perturbations, remat), saved, blocks(d_hs, remat))
    (_, d_weights), (d_xs, d_states) = jax.lax.scan(block, (zero, jnp.zeros_like(weights)), inputs,
                                                    reverse=True)
    return cell.unstack(d_weights, H), *unblock((d_xs, d_states), T)


states.defvjp(states_forward, states_backward)


def apply(cell, task, params: dict, xs: jax.Array, perturbations=None, scan_unroll: int = 1,
          remat: int = 0):
    """Task outputs for time-major xs: (T', B, I): (T', B, O) when the task reads every step,
    else (B, O) from h_T. A cell with a fast path runs through `states`, any other through
    `autodiff.states`; `perturbations` ({name: (T, …)} zeros, `autodiff.zero_perturbations`)
    make the per-timestep state gradients."""
    if autodiff.has_fast_path(cell):
        h = states(cell, scan_unroll, remat, task.reads_every_step, params["cell"], xs, perturbations)
    else:
        h = autodiff.states(cell, params["cell"], xs, perturbations, task.reads_every_step, scan_unroll)
    return matmul(h, params["readout"]["w"]) + params["readout"]["b"]

