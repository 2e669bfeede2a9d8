"""The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting recurrent neural networks for
long sequences"; reference code `NicolasZucchet/minimal-LRU`, `lru/model.py`), one layer, on the
protocol path (autodiff of its step):

    λ = exp(−exp(ν) + i·exp(θ))                 one complex eigenvalue per state unit, |λ| < 1
    x_t = λ ⊙ x_{t−1} + γ ⊙ (u_t B)              γ = exp(γ_log), initialised to √(1 − |λ|²)
    h_t = Re(x_t C) + u_t D

ν = log(−½ log U[r_min², r_max²]) puts |λ| uniformly on the ring [r_min, r_max] (in area);
θ = log(max_phase · U[0, 1]). B = (B_re + i B_im) with N(0, 1/(2I)) entries, C likewise with
N(0, 1/N), D with N(0, 1/I). Each unit's error signal follows |λ_j|^{T−t} exactly: the linear
recurrence is the modern cure for the vanishing gradient when |λ| is near 1.

Deviations from the paper's layer: one layer with no MLP/GLU or residual around it (the task's
linear readout reads h_t), and D is an (I, H) matrix, since the input is narrower than H here.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


class LRU:
    """model.options: r_min [0.9], r_max [0.999], max_phase [π/10], state_size [hidden]."""

    carry_names = ("h", "x")
    recurrent_state = "x"  # h_t is a readout of x_t: the error signal travels back through x

    def __init__(self, r_min: float = 0.9, r_max: float = 0.999, max_phase: float = math.pi / 10,
                 state_size: int | None = None):
        if not 0 <= r_min < r_max <= 1:
            raise ValueError(f"need 0 ≤ r_min < r_max ≤ 1, got r_min={r_min}, r_max={r_max}")
        if max_phase <= 0 or (state_size is not None and state_size < 1):
            raise ValueError(f"need max_phase > 0 and state_size ≥ 1, got {max_phase}, {state_size}")
        self.r_min, self.r_max, self.max_phase, self.state_size = r_min, r_max, max_phase, state_size

    def init(self, key, input_size: int, hidden: int, dtype):
        N, I = self.state_size or hidden, input_size
        keys = jax.random.split(key, 7)
        ring = jax.random.uniform(keys[0], (N,), dtype)
        nu_log = jnp.log(-0.5 * jnp.log(ring * (self.r_max**2 - self.r_min**2) + self.r_min**2))
        theta_log = jnp.log(self.max_phase * jax.random.uniform(keys[1], (N,), dtype))
        modulus = jnp.exp(-jnp.exp(nu_log))
        normal = lambda k, shape, var: jax.random.normal(k, shape, dtype) * math.sqrt(var)  # noqa: E731
        return {
            "nu_log": nu_log, "theta_log": theta_log, "gamma_log": jnp.log(jnp.sqrt(1 - modulus**2)),
            "B_re": normal(keys[2], (I, N), 1 / (2 * I)), "B_im": normal(keys[3], (I, N), 1 / (2 * I)),
            "C_re": normal(keys[4], (N, hidden), 1 / N), "C_im": normal(keys[5], (N, hidden), 1 / N),
            "D": normal(keys[6], (I, hidden), 1 / I),
        }

    @staticmethod
    def eigenvalues(params) -> jax.Array:
        """λ: (N,) complex."""
        return jnp.exp(-jnp.exp(params["nu_log"]) + 1j * jnp.exp(params["theta_log"]))

    def initial_carry(self, params, batch: int):
        real = params["D"].dtype
        complex_dtype = jnp.result_type(real, jnp.complex64)
        return {"h": jnp.zeros((batch, params["D"].shape[1]), real),
                "x": jnp.zeros((batch, params["nu_log"].shape[0]), complex_dtype)}

    def step(self, params, carry, u, delta=None):
        """x_t, then h_t from it; `delta` perturbs x_t before h_t reads it (so ‖∂L/∂x_t‖ counts
        both of x_t's paths), and h_t."""
        dot = lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)  # noqa: E731
        b = (params["B_re"] + 1j * params["B_im"]) * jnp.exp(params["gamma_log"])
        x = self.eigenvalues(params) * carry["x"] + dot(u.astype(b.dtype), b)
        x = x if delta is None else x + delta["x"]
        h = dot(x, params["C_re"] + 1j * params["C_im"]).real + dot(u, params["D"])
        return {"h": h if delta is None else h + delta["h"], "x": x}
