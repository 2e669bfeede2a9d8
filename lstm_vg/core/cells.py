"""Recurrent cells: the vanilla tanh RNN and the LSTM, as pure functions over pytrees.

Row-vector convention: x_t is (B, I), h is (B, H).

tanh RNN::

    h_t = tanh(x_t @ w_x + h_{t-1} @ w_h + b)            params {"w_x": (I,H), "w_h": (H,H), "b": (H,)}

LSTM (gate order i, f, g, o — the layout PyTorch and Flax use)::

    z = x_t @ w_x + h_{t-1} @ w_h + b                    params {"w_x": (I,4H), "w_h": (H,4H), "b": (4H,)}
    i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o);  g = tanh(z_g)
    c_t = f * c_{t-1} + i * g;                           h_t = o * tanh(c_t)

A cell's carry is a dict of (B, H) arrays: {"h"} for the RNN, {"h", "c"} for the LSTM. Its keys
name the per-timestep gradient norms the tool logs (``h_norms``, ``c_norms``).

A cell is what training uses: `forward` (one step from the pre-activation z_t, which
`model.forward_scan` computes), its hand-derived reverse step `backward`, the carry layout and the
initialisation. The textbook one-step forms live in the tests (tests/reference.py), which check
these against them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

Params = dict[str, jax.Array]
Carry = dict[str, jax.Array]

RECURRENT_INITS = ("orthogonal", "normal", "uniform", "identity")


def matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """a @ b at full float32 precision on every backend (TPUs/GPUs default to bf16/tf32 passes)."""
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def recurrent_block(key: jax.Array, hidden: int, kind: str, scale: float, dtype) -> jax.Array:
    """One (H, H) recurrent weight block.

    orthogonal: scale · Q (Q orthogonal); identity: scale · I (Le et al. 2015);
    normal: N(0, scale²/H); uniform: U(±scale·√(3/H)), the same variance as normal.
    """
    if kind == "orthogonal":
        return scale * jax.nn.initializers.orthogonal()(key, (hidden, hidden), dtype)
    if kind == "identity":
        return scale * jnp.eye(hidden, dtype=dtype)
    if kind == "normal":
        return scale / math.sqrt(hidden) * jax.random.normal(key, (hidden, hidden), dtype)
    if kind == "uniform":
        limit = scale * math.sqrt(3.0 / hidden)
        return jax.random.uniform(key, (hidden, hidden), dtype, -limit, limit)
    raise ValueError(f"unknown recurrent_init {kind!r}; allowed: {', '.join(RECURRENT_INITS)}")


def glorot_uniform(key: jax.Array, fan_in: int, fan_out: int, dtype) -> jax.Array:
    """(fan_in, fan_out) weights, U(±√(6/(fan_in+fan_out)))."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return jax.random.uniform(key, (fan_in, fan_out), dtype, -limit, limit)


def perturb(x: jax.Array, delta: Carry | None, name: str) -> jax.Array:
    """x + delta[name]; the zero perturbation whose gradient is ∂L/∂x (see `model.unroll`)."""
    return x if delta is None else x + delta[name]


def matmul_transposed(a: jax.Array, b: jax.Array) -> jax.Array:
    """a @ bᵀ without materialising bᵀ (the backward pass's (B, G·H) @ (G·H, H))."""
    return jax.lax.dot_general(a, b, (((1,), (1,)), ((), ())), precision=jax.lax.Precision.HIGHEST)


def rnn_forward(carry: Carry, z: jax.Array, delta: Carry | None = None):
    """h_t = tanh(z) from the pre-activation z = x_t @ w_x + h_{t-1} @ w_h + b: (B, H).

    Returns (carry_t, what `rnn_backward` needs besides the carries: tanh's output, when a
    perturbation makes it differ from h_t)."""
    y = jnp.tanh(z)
    return {"h": perturb(y, delta, "h")}, ({} if delta is None else {"y": y})


def rnn_backward(w_h: jax.Array, extras: dict, previous: Carry, after: Carry, d_carry: Carry):
    """One reverse step from carry_{t-1} (`previous`) to carry_t (`after`). d_carry =
    {"h": ∂L/∂h_t} in full → (∂L/∂carry_{t-1} through this step, ∂L/∂z_t, the state gradients
    {"h": ∂L/∂h_t})."""
    y = extras.get("y", after["h"])
    d_z = d_carry["h"] * (1 - y * y)
    return {"h": matmul_transposed(d_z, w_h)}, d_z, d_carry


def stacked_weights(params: Params) -> jax.Array:
    """[w_h; w_x; b]: (H + I + 1, G·H), the weights of z_t = [h_{t-1}, x_t, 1] @ [w_h; w_x; b]."""
    return jnp.concatenate([params["w_h"], params["w_x"], params["b"][None]])


def split_weights(d_weights: jax.Array, hidden: int) -> Params:
    """The inverse of `stacked_weights` for a gradient: {"w_h", "w_x", "b"}."""
    return {"w_h": d_weights[:hidden], "w_x": d_weights[hidden:-1], "b": d_weights[-1]}



def lstm_gate_constants(hidden: int, dtype) -> tuple[jax.Array, jax.Array]:
    """(4H,) scale s and shift u with act(z) = s·tanh(s·z) + u for each block of i, f, g, o.

    sigmoid(z) = ½·tanh(z/2) + ½ (s = u = ½) and tanh(z) (s = 1, u = 0). Writing the three
    sigmoids and the tanh as one tanh over the whole (B, 4H) pre-activation keeps the gates one
    fused elementwise pass per step on CPU (docs/architecture.md#decisions-and-why).
    """
    scale = jnp.repeat(jnp.asarray([0.5, 0.5, 1.0, 0.5], dtype), hidden)
    shift = jnp.repeat(jnp.asarray([0.5, 0.5, 0.0, 0.5], dtype), hidden)
    return scale, shift


def lstm_forward(carry: Carry, z: jax.Array, delta: Carry | None = None, forget_gate: bool = True):
    """One LSTM step from the pre-activation z = x_t @ w_x + h_{t-1} @ w_h + b: (B, 4H) →
    (carry {"h", "c"} of (B, H), the gate activations {"a": (B, 4H)} that `lstm_backward` needs).

    Without the forget gate (Hochreiter & Schmidhuber's 1997 form) f ≡ 1: c_t = c_{t-1} + i·g;
    the f block of the weights is kept (the layout stays the same) but unused. δ_c is added to
    c_t before h_t = o·tanh(c_t) reads it, so ∂L/∂δ_c counts both paths out of c_t.
    """
    c = carry["c"]
    scale, shift = lstm_gate_constants(c.shape[-1], z.dtype)
    a = scale * jnp.tanh(scale * z) + shift
    i, f, g, o = jnp.split(a, 4, axis=-1)
    c = perturb((f * c if forget_gate else c) + i * g, delta, "c")
    return {"h": perturb(o * jnp.tanh(c), delta, "h"), "c": c}, {"a": a}


def lstm_backward(
    w_h: jax.Array, extras: dict, previous: Carry, after: Carry, d_carry: Carry, forget_gate: bool = True
):
    """One reverse step, from the gate activations saved by `lstm_forward`, c_{t-1} (in
    `previous`) and c_t (in `after`).

    d_carry = {"h": ∂L/∂h_t in full, "c": ∂L/∂c_t through c_{t+1} only} → (∂L/∂carry_{t-1}
    through this step, ∂L/∂z_t: (B, 4H), the state gradients {"h", "c"} with ∂L/∂c_t in full).
    The four gate derivatives are one pass over (B, 4H): act'(z) = s² − (act(z) − u)².
    """
    a, c = extras["a"], after["c"]
    i, f, g, o = jnp.split(a, 4, axis=-1)
    tanh_c = jnp.tanh(c)
    d_h = d_carry["h"]
    d_c = d_carry["c"] + d_h * o * (1 - tanh_c * tanh_c)
    d_f = d_c * previous["c"] if forget_gate else jnp.zeros_like(d_c)
    d_a = jnp.concatenate([d_c * g, d_f, d_c * i, d_h * tanh_c], axis=-1)
    scale, shift = lstm_gate_constants(c.shape[-1], a.dtype)
    d_z = d_a * (scale * scale - (a - shift) ** 2)
    d_previous = {"h": matmul_transposed(d_z, w_h), "c": d_c * f if forget_gate else d_c}
    return d_previous, d_z, {"h": d_h, "c": d_c}



def without_forget_gate(cell: Cell) -> Cell:
    return dataclasses.replace(
        cell,
        forward=partial(lstm_forward, forget_gate=False),
        backward=partial(lstm_backward, forget_gate=False),
        keep=None,  # f ≡ 1: no gate, an infinite timescale
    )


def no_bias(key, hidden_size: int, dtype, **options) -> jax.Array:
    return jnp.zeros((hidden_size,), dtype)


def lstm_bias(key, hidden_size: int, dtype, *, forget_bias: float = 1.0, chrono: int | None = None):
    """(4H,) biases, zero but for the forget gate's: `forget_bias`, or with `chrono` = T_max the
    chrono initialisation (Tallec & Ollivier 2018): b_f ~ log U[1, T_max − 1], b_i = −b_f."""
    H = hidden_size
    b = jnp.zeros((4 * H,), dtype)
    if chrono is None:
        return b.at[H : 2 * H].set(forget_bias)
    b_f = jnp.log(jax.random.uniform(key, (H,), dtype, 1.0, chrono - 1.0))
    return b.at[:H].set(-b_f).at[H : 2 * H].set(b_f)


@dataclass(frozen=True)
class Cell:
    """A recurrent cell as training uses it: one step forward from its pre-activation and its
    reverse step, the carry layout and the initialisation.

    `forward(carry_{t-1}, z_t, delta=None) → (carry_t, extras_t)`: z_t (B, G·H) is
    [h_{t-1}, x_t, 1] @ [w_h; w_x; b]; extras_t is what `backward` needs besides the carries;
    `delta` ({name: (B, H)} or None) is added to each state as it is made (see `model.states`).

    `backward(w_h, extras_t, carry_{t-1}, carry_t, d_carry) → (d_carry_{t-1}, d_z_t, d_states_t)`:
    w_h (H, G·H); carries {name: (B, H)}; d_carry {name: (B, H)}, ∂L/∂carry_t with h's in full and
    c's through c_{t+1} only. Returns ∂L/∂carry_{t-1} through this step ({name: (B, H)}), ∂L/∂z_t
    (B, G·H) and the state gradients ∂L/∂s_t in full ({name: (B, H)}, the logged norms' source).
    """

    name: str
    gates: int  # G: number of H-blocks in the pre-activation (1 for the RNN, 4 for the LSTM)
    carry_names: tuple[str, ...]
    forward: Callable
    backward: Callable
    bias: Callable[..., jax.Array]  # (key, H, dtype, **bias options) → (G·H,) or {name: array}
    # params → the stacked weights W of z_t = [h_{t-1}, x_t, 1] @ W: (H + I + 1, G·H), and back
    stack: Callable[[Params], jax.Array] = stacked_weights
    unstack: Callable[[jax.Array, int], Params] = split_weights
    blocks: int | None = None  # H-blocks of w_x and w_h when not G (the GRU: 3 in a 4H-wide W)
    keep: Callable[[dict], jax.Array] | None = None  # extras → the gate that keeps the state

    def init(
        self,
        key: jax.Array,
        input_size: int,
        hidden_size: int,
        dtype=jnp.float32,
        *,
        recurrent_init: str = "orthogonal",
        scale: float = 1.0,
        **bias_options,
    ) -> Params:
        """Glorot-uniform input weights, a `recurrent_init` block per gate, `self.bias` biases.

        Bias options are the LSTM's `forget_bias` (default 1.0) and `chrono` (default None);
        the RNN's biases are 0 and it ignores them.
        """
        H, G = hidden_size, self.blocks or self.gates
        key_x, key_h, key_b = jax.random.split(key, 3)
        w_x = jnp.concatenate(
            [glorot_uniform(k, input_size, H, dtype) for k in jax.random.split(key_x, G)], axis=1
        )
        w_h = jnp.concatenate(
            [recurrent_block(k, H, recurrent_init, scale, dtype) for k in jax.random.split(key_h, G)],
            axis=1,
        )
        biases = self.bias(key_b, H, dtype, **bias_options)
        return {"w_x": w_x, "w_h": w_h, **(biases if isinstance(biases, dict) else {"b": biases})}

    def zero_carry(self, batch: int, hidden_size: int, dtype=jnp.float32) -> Carry:
        """Zero state: {name: (B, H)} for each carry entry."""
        return {name: jnp.zeros((batch, hidden_size), dtype) for name in self.carry_names}

    # The cell protocol (docs/cells.md), which the autodiff path trains through.

    def initial_carry(self, params: Params, batch: int) -> Carry:
        """The zero state {name: (B, H)}, in the params' dtype."""
        return self.zero_carry(batch, params["w_h"].shape[0], params["w_h"].dtype)

    def step(self, params: Params, carry: Carry, x: jax.Array, delta: Carry | None = None) -> Carry:
        """carry_t from carry_{t-1} and x_t: (B, I) through `forward`; `delta` is added to each
        state as it is made (so the LSTM's c_t counts its path through h_t too)."""
        u = jnp.concatenate([carry["h"], x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)
        return self.forward(carry, matmul(u, self.stack(params)), delta)[0]

    def keep_gate(self, params: Params, carry: Carry, x: jax.Array) -> jax.Array | None:
        """The gate of the step from carry and x that keeps the state, (B, H): the LSTM's f, the
        GRU's z; None for a cell without one (`core.dynamics`)."""
        if self.keep is None:
            return None
        u = jnp.concatenate([carry["h"], x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)
        return self.keep(self.forward(carry, matmul(u, self.stack(params)))[1])

    def recurrent_matrix(self, params: Params) -> jax.Array | None:
        """W_h of h_t = tanh(h_{t−1} W_h + …): the RNN's w_h; None for the gated cells."""
        return params["w_h"] if self.gates == 1 else None


RNN = Cell(name="rnn", gates=1, carry_names=("h",), forward=rnn_forward,
           backward=rnn_backward, bias=no_bias)
LSTM = Cell(name="lstm", gates=4, carry_names=("h", "c"), forward=lstm_forward,
            backward=lstm_backward, bias=lstm_bias, keep=lambda extras: jnp.split(extras["a"], 4, axis=-1)[1])

LSTM_WITHOUT_FORGET_GATE = without_forget_gate(LSTM)
