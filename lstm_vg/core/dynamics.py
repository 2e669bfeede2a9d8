"""Why the error signal decays: the dynamics of a cell's state along its trajectories, the theory
the measured ‖∂ℓ/∂s_t‖ profile is read against (docs/plots.md, docs/results-format.md).

The state s_t of a cell is its whole carry flattened per example ((B, D) real; a complex entry
counts its real and imaginary parts), and one step is the map s_t = F(s_{t−1}, x_t) with Jacobian
J_t = ∂s_t/∂s_{t−1}, which JAX gives (`jax.linearize` of the cell's `step`); nothing is derived
per cell. Backpropagation multiplies the error signal by J_tᵀ at every step back, so:

- **Lyapunov exponents** (Benettin's QR method, as in Vogt et al. 2020 and Engelken et al.
  2020): Q_t R_t = J_t Q_{t−1} with Q_0 a random orthonormal (D, k) frame; λ_i = (1/T) Σ_t
  ln |R_t,ii|, per step, averaged over the trajectories. λ₁ is the growth rate per step of
  ‖J_T ⋯ J_1 v‖ for almost every v, and of ‖J_1ᵀ ⋯ J_Tᵀ g‖ alike: the error signal changes by
  about e^{λ₁} per step back, a measured decay of −λ₁/ln 10 decades per step.
- **The Jacobian product** ∏ J_t and its singular values (Chen, Pennington & Schoenholz 2018).
- **Input connectivity** ‖∂ŷ/∂x_t‖ (Distill 2019, "Visualizing memorization in RNNs"): how much
  the prediction depends on each input, ŷ being the task's `connectivity_score`.
- **The keep gate** (the LSTM's forget gate f, the GRU's update gate z): its mean per unit over
  the trajectories and the unit's timescale τ = 1/(1 − f̄) (Tallec & Ollivier 2018).
- **The recurrent matrix** of a cell h_t = φ(h_{t−1} W_h + …) with |φ'| ≤ 1 (the tanh RNN,
  IndRNN's diag(u), expRNN's expm(S), the LRU's diag(λ)): ‖∂h_t/∂h_k‖ ≤ σ_max(W_h)^{t−k}, the
  bound of Pascanu, Mikolov & Bengio (2013, §2.1) with γ = 1.

A cell opts in to the last two with optional protocol members (docs/cells.md):
`keep_gate(weights, carry, x) -> (B, H) or None` and `recurrent_matrix(params) -> (H, H) or None`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstm_vg.core import autodiff, model
from lstm_vg.core.gradients import state_norm

# The names of the diagnostics, as `log.diagnostics` lists them.
DIAGNOSTICS = ("lyapunov", "recurrent_matrix", "connectivity", "gates")


def flatten_state(carry: dict, names) -> jax.Array:
    """{name: (B, n) real or complex} → (B, D): the entries side by side, a complex one as its
    real then imaginary part."""
    parts = []
    for name in names:
        s = carry[name]
        parts += [s.real, s.imag] if jnp.iscomplexobj(s) else [s]
    return jnp.concatenate(parts, axis=-1)


def unflatten_state(v: jax.Array, like: dict, names) -> dict:
    """The inverse of `flatten_state`, shaped and typed like `like`."""
    carry, start = {}, 0
    for name in names:
        s = like[name]
        n = s.shape[-1]
        if jnp.iscomplexobj(s):
            real, imag = v[..., start:start + n], v[..., start + n:start + 2 * n]
            carry[name] = jax.lax.complex(real, imag).astype(s.dtype)
            start += 2 * n
        else:
            carry[name] = v[..., start:start + n].astype(s.dtype)
            start += n
    return carry


def step_map(cell, weights, carry: dict, x: jax.Array):
    """s ↦ flatten(step(weights, unflatten(s), x)): the state map of one step (B, D) → (B, D)."""
    names = cell.carry_names

    def f(s):
        return flatten_state(cell.step(weights, unflatten_state(s, carry, names), x), names)

    return f


def orthonormalize(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A = Q R for a: (…, D, k), k ≤ D, by Gram–Schmidt with reorthogonalisation ("twice is
    enough", CGS2): (Q (…, D, k) with orthonormal columns, |diag R| (…, k) ≥ 0). Plain array ops
    rather than LAPACK's QR, which hung XLA on CPU when two host devices ran it at once (seen with
    jaxlib 0.7 and the LSTM's probe; docs/architecture.md#decisions-and-why). A column in the span
    of the earlier ones (|R_jj| = 0, a direction the step killed) gives a zero column of Q."""
    k = a.shape[-1]

    def column(j, q):
        v = a[..., j]
        for _ in range(2):  # the columns ≥ j of q are still zero: they project nothing away
            v = v - jnp.einsum("...dk,...k->...d", q, jnp.einsum("...dk,...d->...k", q, v))
        norm = jnp.linalg.norm(v, axis=-1)
        safe = jnp.where(norm > 0, norm, 1)
        return q.at[..., j].set(v / safe[..., None]), norm

    def body(j, carry):
        q, norms = carry
        q, norm = column(j, q)
        return q, norms.at[..., j].set(norm)

    return jax.lax.fori_loop(0, k, body, (jnp.zeros_like(a), jnp.zeros(a.shape[:-2] + (k,), a.dtype)))


def initial_frame(key: jax.Array, dimension: int, k: int, dtype) -> jax.Array:
    """Q_0: (D, min(k, D)) orthonormal columns, from a normal draw."""
    return orthonormalize(jax.random.normal(key, (dimension, min(k, dimension)), dtype))[0]


def linearized_step(cell, weights, carry: dict, x: jax.Array):
    """(s_t: (B, D), v ↦ J_t v): the step's state map at carry_{t−1}, linearised."""
    return jax.linearize(step_map(cell, weights, carry, x), flatten_state(carry, cell.carry_names))


def lyapunov_exponents(cell, params, xs: jax.Array, k: int, key: jax.Array) -> jax.Array:
    """The top min(k, D) Lyapunov exponents (natural log per step, descending) of the cell's state
    along the trajectories of xs: (T, B, I) from its initial carry, averaged over the B
    trajectories; `key` draws the starting frame Q_0. A direction the step maps to zero (a dead
    ReLU unit) has exponent −∞; it shows as a large negative number (|R_ii| is rounding noise,
    or at least the dtype's smallest normal number), never as −∞ or NaN."""
    weights = autodiff.prepared(cell, params)
    carry = cell.initial_carry(weights, xs.shape[1])
    s = flatten_state(carry, cell.carry_names)
    B, D = s.shape
    frame = initial_frame(key, D, k, s.dtype)
    k = frame.shape[1]
    tiny = jnp.finfo(s.dtype).tiny

    def body(state, x):
        carry, q, total = state
        after, tangent = linearized_step(cell, weights, carry, x)
        q, growth = orthonormalize(jax.vmap(tangent, in_axes=2, out_axes=2)(q))
        total = total + jnp.log(jnp.maximum(growth, tiny))
        return (unflatten_state(after, carry, cell.carry_names), q, total), None

    start = (carry, jnp.broadcast_to(frame, (B, D, k)), jnp.zeros((B, k), s.dtype))
    (_, _, total), _ = jax.lax.scan(body, start, xs)
    return -jnp.sort(-jnp.mean(total, axis=0) / xs.shape[0])


def jacobian_product(cell, params, xs: jax.Array) -> jax.Array:
    """∏_t J_t = J_T ⋯ J_1: (B, D, D), per trajectory of xs: (T, B, I) from the initial carry.
    Computed as it is, so for short horizons only (its entries grow or shrink like e^{λ T})."""
    weights = autodiff.prepared(cell, params)
    carry = cell.initial_carry(weights, xs.shape[1])
    B, D = flatten_state(carry, cell.carry_names).shape

    def body(state, x):
        carry, product = state
        after, tangent = linearized_step(cell, weights, carry, x)
        product = jax.vmap(tangent, in_axes=2, out_axes=2)(product)
        return (unflatten_state(after, carry, cell.carry_names), product), None

    eye = jnp.broadcast_to(jnp.eye(D, dtype=xs.dtype), (B, D, D))
    (_, product), _ = jax.lax.scan(body, (carry, eye), xs)
    return product


def connectivity_score(task, outputs: jax.Array, targets) -> jax.Array:
    """ŷ of the input connectivity, summed over the batch: the task's own `connectivity_score`
    (outputs, targets → (B,): the prediction it scores) where it has one; else, over all outputs,
    the logit of the predicted class (for one output unit: the output itself), as Distill's
    connectivity differentiates the prediction."""
    own = getattr(task, "connectivity_score", None)
    if own is not None:
        return jnp.sum(own(outputs, targets))
    picked = jax.nn.one_hot(jnp.argmax(outputs, axis=-1), outputs.shape[-1], dtype=outputs.dtype)
    return jnp.sum(outputs * jax.lax.stop_gradient(picked))


def input_connectivity(cell, task, params, xs: jax.Array, targets) -> jax.Array:
    """‖∂ŷ_b/∂x_t^{(b)}‖₂ per step and example: (T, B), from one backward pass (the examples do
    not interact, so the gradient of the batch's summed score is each example's own)."""
    def score(xs):
        return connectivity_score(task, model.apply(cell, task, params, xs), targets)

    return state_norm(jax.grad(score)(xs))


def keep_gate_means(cell, params, xs: jax.Array) -> jax.Array | None:
    """Each unit's keep gate (`cell.keep_gate`: the LSTM's f, the GRU's z) averaged over the steps
    and trajectories of xs: (T, B, I): (H,); None for a cell without one."""
    keep_gate = getattr(cell, "keep_gate", None)
    if keep_gate is None:
        return None
    weights = autodiff.prepared(cell, params)
    carry = cell.initial_carry(weights, xs.shape[1])
    if keep_gate(weights, carry, xs[0]) is None:
        return None

    def body(carry, x):
        return cell.step(weights, carry, x), keep_gate(weights, carry, x)

    _, gates = jax.lax.scan(body, carry, xs)
    return jnp.mean(gates, axis=(0, 1))


def timescales(gate_means: jax.Array) -> jax.Array:
    """τ = 1/(1 − f̄) per unit: the steps over which a gate of mean f̄ keeps a fraction 1/e of the
    state (f̄^τ ≈ e^{−1} for f̄ near 1); inf where f̄ = 1."""
    return 1 / (1 - gate_means)


def recurrent_matrix(cell, params) -> jax.Array | None:
    """The cell's W_h (`cell.recurrent_matrix(params)`), or None for a cell without one."""
    member = getattr(cell, "recurrent_matrix", None)
    return None if member is None else member(params)
