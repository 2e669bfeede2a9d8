"""The textbook one-step forms of the built-in cells, in plain JAX: the reference the fused,
hand-differentiated training path (`Cell.forward`/`Cell.backward`, `model.states`) is tested
against. Written as the equations read, with no shared code from lstm_vg.core."""

import jax
import jax.numpy as jnp

from lstm_vg.core import cells


def dot(a, b):
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def plus(x, delta, name):
    return x if delta is None else x + delta[name]


def rnn_step(params, carry, x, delta=None):
    """h_t = tanh(x_t @ w_x + h_{t-1} @ w_h + b) (+ δ_h)."""
    h = jnp.tanh(dot(x, params["w_x"]) + dot(carry["h"], params["w_h"]) + params["b"])
    return {"h": plus(h, delta, "h")}


def lstm_step(params, carry, x, delta=None, forget_gate=True):
    """z = x_t @ w_x + h_{t-1} @ w_h + b split into i, f, g, o; c_t = f·c_{t-1} + i·g (+ δ_c; f ≡ 1
    without the forget gate); h_t = o·tanh(c_t) (+ δ_h)."""
    z = dot(x, params["w_x"]) + dot(carry["h"], params["w_h"]) + params["b"]
    z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=-1)
    i, f, g, o = jax.nn.sigmoid(z_i), jax.nn.sigmoid(z_f), jnp.tanh(z_g), jax.nn.sigmoid(z_o)
    c = plus((f if forget_gate else 1.0) * carry["c"] + i * g, delta, "c")
    return {"h": plus(o * jnp.tanh(c), delta, "h"), "c": c}


def gru_step(params, carry, x, delta=None):
    """PyTorch's GRU (reset after), blocks r, z, n: r, z = sigmoid(x W_i· + b_i· + h W_h· + b_h·);
    n = tanh(x W_in + b_in + r·(h W_hn + b_hn)); h_t = (1 − z)·n + z·h_{t-1} (+ δ_h)."""
    x_r, x_z, x_n = jnp.split(dot(x, params["w_x"]) + params["b_x"], 3, axis=-1)
    h_r, h_z, h_n = jnp.split(dot(carry["h"], params["w_h"]) + params["b_h"], 3, axis=-1)
    r, z = jax.nn.sigmoid(x_r + h_r), jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * h_n)
    return {"h": plus((1 - z) * n + z * carry["h"], delta, "h")}


def textbook_step(cell: cells.Cell):
    """The reference step of a built-in cell: (params, carry, x_t, delta=None) → carry_t."""
    if cell.name == "rnn":
        return rnn_step
    if cell.name == "gru":
        return gru_step
    if cell is cells.LSTM_WITHOUT_FORGET_GATE:
        return lambda params, carry, x, delta=None: lstm_step(params, carry, x, delta, False)
    return lstm_step
