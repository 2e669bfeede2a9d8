"""The exponential RNN (Lezcano-Casado & Martínez-Rubio 2019, "Cheap orthogonal constraints in
neural networks"; reference code `lezcano/expRNN`, `orthogonal.py`, `initialization.py`,
`1_copying.py`), on the protocol path:

    W_h = expm(S),  S = triu(A, 1) − triu(A, 1)ᵀ        orthogonal at every step, by construction
    h_t = modReLU(x_t W_x + h_{t−1} W_h)                 modReLU(z) = sign(z) · relu(|z| + b)

A (`log_w_h`, (H, H)) is the unconstrained parameter; only its strict upper triangle is used.
W_h is computed once per sequence (`prepare`), outside the scan, and JAX differentiates through
the matrix exponential. Initialisation as in the reference code:
- "henaff": S block-diagonal with 2×2 blocks [[0, θ], [−θ, 0]], θ ~ U(−π, π);
- "cayley": the same blocks with θ = −tan(φ/2), φ ~ U(0, π/2) (−√((1 − cos φ)/(1 + cos φ)));
- W_x Kaiming-normal for a ReLU (N(0, 2/I)), no input bias, b ~ U(−0.01, 0.01).
The paper trains A with a learning rate 10× smaller than the rest (`lr_orth` = `lr`/10 in
`1_copying.py`): `learning_rate_scales` gives A the factor `orthogonal_lr_scale` [0.1].
Deviation: the task's readout keeps lstm-vg's initialisation (the reference's output layer is
Kaiming-normal with zero bias).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

INITS = ("henaff", "cayley")


def skew(a: jax.Array) -> jax.Array:
    """triu(A, 1) − triu(A, 1)ᵀ."""
    upper = jnp.triu(a, 1)
    return upper - upper.T


def recurrent_matrix(params) -> jax.Array:
    """W_h = expm(skew(log_w_h)): (H, H), orthogonal."""
    return jax.scipy.linalg.expm(skew(params["log_w_h"]))


def modrelu(z: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.sign(z) * jax.nn.relu(jnp.abs(z) + b)


class ExpRNN:
    """model.options: init ["henaff" | "cayley"], orthogonal_lr_scale [0.1] (A's learning rate
    over the run's `train.lr`)."""

    carry_names = ("h",)

    def __init__(self, init: str = "henaff", orthogonal_lr_scale: float = 0.1):
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        if not orthogonal_lr_scale > 0:
            raise ValueError(f"need orthogonal_lr_scale > 0, got {orthogonal_lr_scale}")
        self.skew_init, self.orthogonal_lr_scale = init, orthogonal_lr_scale

    def init(self, key, input_size: int, hidden: int, dtype):
        key_x, key_a, key_b = jax.random.split(key, 3)
        if self.skew_init == "henaff":
            angles = jax.random.uniform(key_a, (hidden // 2,), dtype, -math.pi, math.pi)
        else:
            angles = -jnp.tan(jax.random.uniform(key_a, (hidden // 2,), dtype, 0.0, math.pi / 2) / 2)
        # θ_k at A[2k, 2k+1]: 2×2 rotation blocks on the diagonal of W_h = expm(S)
        blocks = jnp.arange(hidden // 2) * 2
        log_w_h = jnp.zeros((hidden, hidden), dtype).at[blocks, blocks + 1].set(angles)
        return {"w_x": jax.random.normal(key_x, (input_size, hidden), dtype) * math.sqrt(2 / input_size),
                "log_w_h": log_w_h,
                "b": jax.random.uniform(key_b, (hidden,), dtype, -0.01, 0.01)}

    def prepare(self, params):
        """What `initial_carry` and `step` receive: W_h computed once per sequence."""
        return {"w_x": params["w_x"], "w_h": recurrent_matrix(params), "b": params["b"]}

    def initial_carry(self, weights, batch: int):
        return {"h": jnp.zeros((batch, weights["b"].shape[0]), weights["b"].dtype)}

    def step(self, weights, carry, x):
        dot = lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)  # noqa: E731
        return {"h": modrelu(dot(x, weights["w_x"]) + dot(carry["h"], weights["w_h"]), weights["b"])}

    def recurrent_matrix(self, params):
        """W_h = expm(S): (H, H), orthogonal."""
        return recurrent_matrix(params)

    def learning_rate_scales(self, params):
        """Per parameter, the factor on the run's learning rate: A's is `orthogonal_lr_scale`."""
        return {"w_x": 1.0, "log_w_h": self.orthogonal_lr_scale, "b": 1.0}
