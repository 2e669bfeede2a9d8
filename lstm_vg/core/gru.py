"""The GRU in PyTorch's and cuDNN's form ("reset after"), gate order r, z, n, with a fast path.

    r = sigmoid(x_t W_ir + b_ir + h_{t-1} W_hr + b_hr)
    z = sigmoid(x_t W_iz + b_iz + h_{t-1} W_hz + b_hz)
    n = tanh(x_t W_in + b_in + r ⊙ (h_{t-1} W_hn + b_hn))
    h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

params {"w_x": (I, 3H), "w_h": (H, 3H), "b_x": (3H,), "b_h": (3H,)}, blocks in the order r, z, n:
`torch.nn.GRU`'s weight_ih_l0, weight_hh_l0 transposed and bias_ih_l0, bias_hh_l0 as they are.

The fast path (`model.states`) needs one pre-activation per step, z_t = [h_{t-1}, x_t, 1] @ W.
The reset gate multiplies the recurrent part of n only, so W is 4H wide: blocks r and z take both
parts summed, then n's input part and n's recurrent part apart (Cho et al. 2014; "reset after"
as in cuDNN and PyTorch):

    W = [[W_hr, W_hz, 0,    W_hn],
         [W_ir, W_iz, W_in, 0   ],
         [b_ir + b_hr, b_iz + b_hz, b_in, b_hn]]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstm_vg.core.cells import Carry, Cell, Params, matmul_transposed, perturb


def stack(params: Params) -> jax.Array:
    """W: (H + I + 1, 4H) from the torch-shaped params (see the module docstring)."""
    H = params["w_h"].shape[0]
    w_h, w_x, b_x, b_h = params["w_h"], params["w_x"], params["b_x"], params["b_h"]
    top = jnp.concatenate([w_h[:, : 2 * H], jnp.zeros_like(w_h[:, :H]), w_h[:, 2 * H :]], axis=1)
    middle = jnp.concatenate([w_x, jnp.zeros_like(w_x[:, :H])], axis=1)
    bias = jnp.concatenate([b_x[: 2 * H] + b_h[: 2 * H], b_x[2 * H :], b_h[2 * H :]])
    return jnp.concatenate([top, middle, bias[None]])


def unstack(d_weights: jax.Array, hidden: int) -> Params:
    """The params' gradients from ∂L/∂W (the zero blocks of W are not parameters)."""
    H = hidden
    top, middle, bias = d_weights[:H], d_weights[H:-1], d_weights[-1]
    return {
        "w_h": jnp.concatenate([top[:, : 2 * H], top[:, 3 * H :]], axis=1),
        "w_x": middle[:, : 3 * H],
        "b_x": bias[: 3 * H],
        "b_h": jnp.concatenate([bias[: 2 * H], bias[3 * H :]]),
    }


def forward(carry: Carry, z: jax.Array, delta: Carry | None = None):
    """One step from z = [h_{t-1}, x_t, 1] @ W: (B, 4H) → ({"h": h_t}, the gates and the
    recurrent part of n that `backward` needs)."""
    z_r, z_z, z_xn, z_hn = jnp.split(z, 4, axis=-1)
    r, u = jax.nn.sigmoid(z_r), jax.nn.sigmoid(z_z)
    n = jnp.tanh(z_xn + r * z_hn)
    h = (1 - u) * n + u * carry["h"]
    return {"h": perturb(h, delta, "h")}, {"r": r, "z": u, "n": n, "hn": z_hn}


def backward(w_h: jax.Array, extras: dict, previous: Carry, after: Carry, d_carry: Carry):
    """One reverse step: d_carry = {"h": ∂L/∂h_t in full} → (∂L/∂h_{t-1} through this step,
    ∂L/∂z_t: (B, 4H), {"h": ∂L/∂h_t}). w_h: the recurrent rows of W, (H, 4H); h_{t-1} also
    reaches h_t directly, through z ⊙ h_{t-1}."""
    r, u, n, z_hn = extras["r"], extras["z"], extras["n"], extras["hn"]
    d_h = d_carry["h"]
    d_pre_n = d_h * (1 - u) * (1 - n * n)
    d_z = jnp.concatenate([d_pre_n * z_hn * r * (1 - r), d_h * (previous["h"] - n) * u * (1 - u),
                           d_pre_n, d_pre_n * r], axis=-1)
    return {"h": matmul_transposed(d_z, w_h) + d_h * u}, d_z, d_carry


def zero_biases(key, hidden_size: int, dtype, **options) -> dict:
    return {"b_x": jnp.zeros((3 * hidden_size,), dtype), "b_h": jnp.zeros((3 * hidden_size,), dtype)}


GRU = Cell(name="gru", gates=4, blocks=3, carry_names=("h",), forward=forward, backward=backward,
           bias=zero_biases, stack=stack, unstack=unstack, keep=lambda extras: extras["z"])
