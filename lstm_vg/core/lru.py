"""The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting recurrent neural networks for
long sequences"; reference code `NicolasZucchet/minimal-LRU`, `lru/model.py`): the paper's stack
of LRU layers, each followed by a GELU, a GLU, a skip connection and a layer norm:

    v⁰_t = u_t W_enc + b_enc                                  the encoder, (I → H)
    for each layer l = 1 … L, on its input v = v^{l−1}_t:
      λ = exp(−exp(ν) + i·exp(θ))                             one complex eigenvalue per unit, |λ| < 1
      x_t = λ ⊙ x_{t−1} + γ ⊙ (v B)                           γ = exp(γ_log), initialised to √(1 − |λ|²)
      y_t = Re(x_t C) + D ⊙ v
      v^l_t = LayerNorm(v + GLU(GELU(y_t))),  GLU(z) = (z W₁ + b₁) ⊙ σ(z W₂ + b₂)
    h_t = v^L_t                                               the task's readout reads it

ν = log(−½ log U[r_min², r_max²]) puts |λ| uniformly on the ring [r_min, r_max] (in area);
θ = log(max_phase · U[0, 1]). B = (B_re + i B_im) with N(0, 1/(2H)) entries, C likewise with
N(0, 1/N), D with N(0, 1); the dense layers N(0, 1/fan_in) with zero biases. A layer's recurrence
is linear, so its state x carries the error signal back in time (`recurrent_state`), each unit's
as |λ_j|^{T−t}: the modern cure for the vanishing gradient when |λ| is near 1. At least two layers
are needed for the adding problem: one linear recurrence of the raw inputs cannot form the
products value × marker.

Two ways to compute the same thing (equal in float64, tests/test_lru.py): `step`, one time step
for the protocol's scan, and, with the option `associative_scan: true`, `sequence`: every step at
once, the recurrence a `lax.associative_scan` over time. On a 2-core CPU the scan of `step` is
faster (docs/cells.md has the figures), so it is the default; the associative scan is meant for
accelerators (not measured). Deviations from the reference: post-norm LayerNorm (not BatchNorm,
so one sequence's outputs do not depend on the batch), no dropout.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def dot(a, b):
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def layer_norm(v, scale, bias, eps: float = 1e-6):
    mean = jnp.mean(v, axis=-1, keepdims=True)
    variance = jnp.mean(jnp.square(v - mean), axis=-1, keepdims=True)
    return (v - mean) * jax.lax.rsqrt(variance + eps) * scale + bias


def combine(earlier, later):
    """The associative operator of x_t = a_t x_{t−1} + b_t: (a, b) then (a', b') is
    (a' a, a' b + b')."""
    a, b = earlier
    a_next, b_next = later
    return a_next * a, a_next * b + b_next


class LRU:
    """model.options: r_min [0.9], r_max [0.999], max_phase [π/10], state_size [hidden] (N per
    layer), layers [2], associative_scan [false] (train through `sequence`)."""

    carry_names = ("h", "x")
    recurrent_state = "x"  # h_t is a readout of the states x_t: the error signal travels back through x

    def __init__(self, r_min: float = 0.9, r_max: float = 0.999, max_phase: float = math.pi / 10,
                 state_size: int | None = None, layers: int = 2, associative_scan: bool = False):
        if not 0 <= r_min < r_max <= 1:
            raise ValueError(f"need 0 ≤ r_min < r_max ≤ 1, got r_min={r_min}, r_max={r_max}")
        if max_phase <= 0 or (state_size is not None and state_size < 1):
            raise ValueError(f"need max_phase > 0 and state_size ≥ 1, got {max_phase}, {state_size}")
        if not (isinstance(layers, int) and layers >= 1):
            raise ValueError(f"need layers ≥ 1, got {layers!r}")
        self.r_min, self.r_max, self.max_phase, self.state_size = r_min, r_max, max_phase, state_size
        self.layers = layers
        if not associative_scan:  # then the protocol's plain scan of `step`: faster on a CPU
            self.sequence = None

    def init(self, key, input_size: int, hidden: int, dtype):
        N, H = self.state_size or hidden, hidden
        normal = lambda k, shape, var: jax.random.normal(k, shape, dtype) * math.sqrt(var)  # noqa: E731

        def layer(key):
            keys = jax.random.split(key, 9)
            ring = jax.random.uniform(keys[0], (N,), dtype)
            nu_log = jnp.log(-0.5 * jnp.log(ring * (self.r_max**2 - self.r_min**2) + self.r_min**2))
            modulus = jnp.exp(-jnp.exp(nu_log))
            return {
                "nu_log": nu_log,
                "theta_log": jnp.log(self.max_phase * jax.random.uniform(keys[1], (N,), dtype)),
                "gamma_log": jnp.log(jnp.sqrt(1 - modulus**2)),
                "B_re": normal(keys[2], (H, N), 1 / (2 * H)), "B_im": normal(keys[3], (H, N), 1 / (2 * H)),
                "C_re": normal(keys[4], (N, H), 1 / N), "C_im": normal(keys[5], (N, H), 1 / N),
                "D": normal(keys[6], (H,), 1.0),
                "w_1": normal(keys[7], (H, H), 1 / H), "b_1": jnp.zeros((H,), dtype),
                "w_2": normal(keys[8], (H, H), 1 / H), "b_2": jnp.zeros((H,), dtype),
                "norm_scale": jnp.ones((H,), dtype), "norm_bias": jnp.zeros((H,), dtype),
            }

        key_encoder, *keys = jax.random.split(key, self.layers + 1)
        return {"encoder": {"w": normal(key_encoder, (input_size, H), 1 / input_size),
                            "b": jnp.zeros((H,), dtype)},
                "layers": [layer(k) for k in keys]}

    @staticmethod
    def eigenvalues(params) -> jax.Array:
        """λ: (L·N,) complex, layer after layer."""
        return jnp.concatenate([jnp.exp(-jnp.exp(p["nu_log"]) + 1j * jnp.exp(p["theta_log"]))
                                for p in params["layers"]])

    def recurrent_matrix(self, params):
        """diag(λ): (L·N, L·N) complex, x_t = λ ⊙ x_{t−1} + … for every layer's states."""
        return jnp.diag(self.eigenvalues(params))

    def prepare(self, params):
        """Once per sequence: each layer's λ and γ ⊙ B."""
        layers = []
        for p in params["layers"]:
            gamma = jnp.exp(p["gamma_log"])
            layers.append(p | {"lambda": jnp.exp(-jnp.exp(p["nu_log"]) + 1j * jnp.exp(p["theta_log"])),
                               "B_re": p["B_re"] * gamma, "B_im": p["B_im"] * gamma})
        return params | {"layers": layers}

    @staticmethod
    def input_term(p, v):
        """v B as a complex array from real matmuls (XLA's complex matmul on a CPU is ~5× slower
        than the two real ones)."""
        return jax.lax.complex(dot(v, p["B_re"]), dot(v, p["B_im"]))

    def initial_carry(self, weights, batch: int):
        real = weights["encoder"]["b"].dtype
        states = sum(p["lambda"].shape[0] for p in weights["layers"])
        return {"h": jnp.zeros((batch, weights["encoder"]["b"].shape[0]), real),
                "x": jnp.zeros((batch, states), jnp.result_type(real, jnp.complex64))}

    @staticmethod
    def after_recurrence(p, v, x):
        """v^l from the layer's input v and its new states x (any leading axes)."""
        y = dot(x.real, p["C_re"]) - dot(x.imag, p["C_im"]) + p["D"] * v
        z = jax.nn.gelu(y)
        return layer_norm(v + (dot(z, p["w_1"]) + p["b_1"]) * jax.nn.sigmoid(dot(z, p["w_2"]) + p["b_2"]),
                          p["norm_scale"], p["norm_bias"])

    def step(self, weights, carry, u, delta=None):
        """One time step; `delta` perturbs each x_t before anything reads it (so ‖∂L/∂x_t‖
        counts all of x_t's paths), and h_t. Under `jax.checkpoint`: the backward pass
        recomputes the step's intermediates from (carry, u) instead of stacking each of them
        over time, which is faster despite the extra forward pass (1.4× for a training step at
        T = 400 and 1000, H = 64, B = 64 on a 2-core CPU; docs/cells.md)."""
        return jax.checkpoint(self.plain_step)(weights, carry, u, delta)

    def plain_step(self, weights, carry, u, delta=None):
        """`step` without the checkpoint: what it computes."""
        v = dot(u, weights["encoder"]["w"]) + weights["encoder"]["b"]
        states, start = [], 0
        for p in weights["layers"]:
            span = slice(start, start + p["lambda"].shape[0])
            start = span.stop
            x = p["lambda"] * carry["x"][:, span] + self.input_term(p, v)
            x = x if delta is None else x + delta["x"][:, span]
            states.append(x)
            v = self.after_recurrence(p, v, x)
        return {"h": v if delta is None else v + delta["h"], "x": jnp.concatenate(states, axis=-1)}

    def sequence(self, weights, us, delta=None):
        """Every step of us: (T, B, I) from the zero carry at once: {name: (T, B, …)}, equal to
        scanning `step`. x_t = λ x_{t−1} + b_t is a `lax.associative_scan` over time; δ_t joins
        b_t, which is δ_t added to x_t after the step made it."""
        v = dot(us, weights["encoder"]["w"]) + weights["encoder"]["b"]
        states, start = [], 0
        for p in weights["layers"]:
            span = slice(start, start + p["lambda"].shape[0])
            start = span.stop
            b = self.input_term(p, v)
            b = b if delta is None else b + delta["x"][..., span]
            lam = jnp.broadcast_to(p["lambda"], (us.shape[0], 1, p["lambda"].shape[0]))
            _, x = jax.lax.associative_scan(combine, (lam, b))
            states.append(x)
            v = self.after_recurrence(p, v, x)
        return {"h": v if delta is None else v + delta["h"], "x": jnp.concatenate(states, axis=-1)}
