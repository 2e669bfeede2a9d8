"""A cell written to lstm-vg's cell protocol (docs/cells.md): the tanh RNN in a few lines.

    .venv/bin/lstm-vg run examples/minimal_rnn.yaml
    .venv/bin/lstm-vg plot results/minimal_rnn

lstm-vg trains it through autodiff of a plain `lax.scan` of `step`, logs ‖∂L/∂h_t‖ for every t,
and batches, resumes, plots and reports its runs like those of the built-in cells.
"""

import jax
import jax.numpy as jnp


class MinimalRNN:
    """h_t = tanh(x_t @ w_x + h_{t-1} @ w_h + b), with w_h = gain · an orthogonal matrix."""

    carry_names = ("h",)  # each name gets a per-timestep gradient-norm profile, <name>_norms

    def __init__(self, gain: float = 1.0):  # the config's model.options are keyword arguments
        self.gain = gain

    def init(self, key, input_size, hidden, dtype):
        key_x, key_h = jax.random.split(key)
        return {
            "w_x": jax.random.normal(key_x, (input_size, hidden), dtype) / jnp.sqrt(input_size),
            "w_h": self.gain * jax.nn.initializers.orthogonal()(key_h, (hidden, hidden), dtype),
            "b": jnp.zeros((hidden,), dtype),
        }

    def initial_carry(self, params, batch):
        return {"h": jnp.zeros((batch, params["w_h"].shape[0]), params["w_h"].dtype)}

    def step(self, params, carry, x):
        return {"h": jnp.tanh(x @ params["w_x"] + carry["h"] @ params["w_h"] + params["b"])}
