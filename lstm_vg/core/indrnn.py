"""The independently recurrent neural network (Li, Li, Cook, Zhu & Gao 2018, "Independently
Recurrent Neural Network (IndRNN): Building a longer and deeper RNN"; reference code
`Sunnydreamrain/IndRNN_Theano_Lasagne`, `adding/adding.py`), one layer, on the protocol path:

    h_t = relu(x_t W + u ⊙ h_{t−1} + b)            u: (H,), one recurrent weight per unit

A unit's error signal through h carries u_j^{T−t} (times the ReLU's 0/1 gates), so keeping
|u_j| near 1 keeps it. The paper's adding-task recipe, with `horizon` = T:
- the recurrent weights of its last layer start in U(2^{−1/T}, 2^{1/T});
- after every update they are clipped to |u| ≤ 2^{1/T} (`constrain`), so u^T ≤ 2;
- input weights N(0, 0.001²), biases 0.
Deviation: one layer where the paper stacks two (ours is its "last layer").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


class IndRNN:
    """model.options: horizon [the task's T'], input_std [0.001], u_low [2^(−1/horizon)],
    u_high [2^(1/horizon)] (the init range of u), u_max [2^(1/horizon)] (the clip)."""

    carry_names = ("h",)

    def __init__(self, horizon: int | None = None, input_std: float = 0.001,
                 u_low: float | None = None, u_high: float | None = None, u_max: float | None = None):
        if horizon is not None and horizon < 1:
            raise ValueError(f"need horizon ≥ 1, got {horizon}")
        self.horizon, self.input_std = horizon, input_std
        bound = 2.0 ** (1 / horizon) if horizon else None
        self.u_low = u_low if u_low is not None else (1 / bound if bound else 0.0)
        self.u_high = u_high if u_high is not None else (bound or 1.0)
        self.u_max = u_max if u_max is not None else bound
        if not self.u_low <= self.u_high:
            raise ValueError(f"need u_low ≤ u_high, got {self.u_low}, {self.u_high}")

    def init(self, key, input_size: int, hidden: int, dtype):
        key_x, key_u = jax.random.split(key)
        return {"w_x": self.input_std * jax.random.normal(key_x, (input_size, hidden), dtype),
                "u": jax.random.uniform(key_u, (hidden,), dtype, self.u_low, self.u_high),
                "b": jnp.zeros((hidden,), dtype)}

    def initial_carry(self, params, batch: int):
        return {"h": jnp.zeros((batch, params["u"].shape[0]), params["u"].dtype)}

    def step(self, params, carry, x):
        z = jnp.matmul(x, params["w_x"], precision=jax.lax.Precision.HIGHEST)
        return {"h": jax.nn.relu(z + params["u"] * carry["h"] + params["b"])}

    def recurrent_matrix(self, params):
        """diag(u): (H, H)."""
        return jnp.diag(params["u"])

    def constrain(self, params):
        """After every update: |u| ≤ u_max (no clip when u_max is None)."""
        if self.u_max is None:
            return params
        return params | {"u": jnp.clip(params["u"], -self.u_max, self.u_max)}
