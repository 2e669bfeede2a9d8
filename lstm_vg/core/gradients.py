"""Per-timestep gradient norms: how much of the error signal reaches each step back in time.

For a batch of sequences with per-example losses ℓ_b, the logged profile of a carry entry s
(``h`` for both cells, ``c`` for the LSTM) is

    s_norms[t] = mean_b ‖∂ℓ_b / ∂s_t^{(b)}‖₂          t = 0 … T'−1 (0-based: s_1 … s_T' in the papers)

computed in the same backward pass as the parameter gradient of the batch-mean loss by adding
zero perturbations to the carry (see `model.states`). Beside it, after Pascanu, Mikolov & Bengio's
code (`pascanur/trainingRNNs`, RNN.py: `n_elems`, with `bound` = 1e-20), each step's reach

    s_reach[t] = mean_b [‖∂C/∂s_t^{(b)}‖² ≥ 1e-20]      C = mean_b ℓ_b, the batch's cost

the fraction of the examples whose error signal at step t is above the floor; its mean over t is
their "steps in the past". The figures summarising a profile (the ratio
s_norms[0] / s_norms[-1], the decay rate) are computed from the stored profiles by
`lstm_vg.results.summary`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstm_vg.core import autodiff, model


def vector_norm(x: jax.Array, axis: int = -1) -> jax.Array:
    """‖x‖₂ along `axis`, exact over the dtype's whole range (tiny entries don't underflow when
    squared, huge ones don't overflow; an infinite entry gives inf, a NaN gives NaN). Subnormal
    entries count as 0: XLA on CPU flushes them to zero anyway.

    x is scaled by 2^-e, where 2^e bounds max|x|, before squaring: a power of two scales exactly.
    The scaling is applied as two half steps because `ldexp` by more than the exponent range
    (e.g. 2^148 for a float32 subnormal) is wrong, and multiplying by 1/max|x| flushes to zero
    for max|x| > 2^126 (the compiler turns x / m into x · (1/m)).
    """
    peak = jnp.max(jnp.abs(x), axis=axis, keepdims=True)
    _, exponent = jnp.frexp(jnp.where(jnp.isfinite(peak) & (peak > 0), peak, 1))
    half = exponent // 2
    scaled = jnp.ldexp(jnp.ldexp(x, -half), half - exponent)
    norm = jnp.linalg.norm(scaled, axis=axis, keepdims=True)
    norm = jnp.ldexp(jnp.ldexp(norm, half), exponent - half)
    return jnp.where(jnp.isinf(peak), jnp.inf, norm).squeeze(axis)


def state_norm(g: jax.Array) -> jax.Array:
    """‖g‖₂ per example over its last axis; a complex state over its real and imaginary parts."""
    if jnp.iscomplexobj(g):
        g = jnp.concatenate([g.real, g.imag], axis=-1)
    return vector_norm(g)


REACH_FLOOR = 1e-20  # on ‖∂C/∂s_t‖², Pascanu et al.'s `bound`


def loss_grads_and_norms(
    cell, task, params: dict, xs: jax.Array, targets: jax.Array, scan_unroll: int = 1,
    remat: int = 0,
) -> tuple[jax.Array, dict, dict[str, jax.Array]]:
    """(batch-mean loss, its parameter gradients, {"<name>_norms": (T',), "<name>_reach": (T',)}
    for each carry entry)."""
    T, B, _ = xs.shape
    deltas = autodiff.zero_perturbations(cell, params["cell"], T, B)

    def summed_loss(params, deltas):
        outputs = model.apply(cell, task, params, xs, deltas, scan_unroll, remat)
        return jnp.sum(task.losses(outputs, targets))

    # Differentiating the *sum* of per-example losses makes ∂/∂δ_t^{(b)} each example's own
    # gradient ∂ℓ_b/∂s_t^{(b)}, independent of B; the parameter gradient is then divided by B.
    total, (param_grads, delta_grads) = jax.value_and_grad(summed_loss, argnums=(0, 1))(
        params, deltas
    )
    norms = {}
    for name, g in delta_grads.items():
        per_example = state_norm(g.reshape(T, B, -1))  # (T, B): ‖∂ℓ_b/∂s_t‖
        norms[f"{name}_norms"] = jnp.mean(per_example, axis=1)
        norms[f"{name}_reach"] = jnp.mean((per_example / B) ** 2 >= REACH_FLOOR, axis=1, dtype=g.real.dtype)
    return total / B, jax.tree.map(lambda g: g / B, param_grads), norms
