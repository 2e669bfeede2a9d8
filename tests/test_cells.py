"""Cells: one fused forward step equals the textbook equations (a float64 NumPy reference);
init layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_vg.core import cells, zoo

BATCH, INPUT, HIDDEN = 3, 4, 5


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def rnn_step_reference(params: dict, h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """h' = tanh(x @ w_x + h @ w_h + b), in float64 NumPy."""
    return np.tanh(x @ params["w_x"] + h @ params["w_h"] + params["b"])


def lstm_step_reference(params: dict, h: np.ndarray, c: np.ndarray, x: np.ndarray):
    """(h', c') from z = x @ w_x + h @ w_h + b split into i, f, g, o blocks, in float64 NumPy."""
    z = x @ params["w_x"] + h @ params["w_h"] + params["b"]
    H = h.shape[-1]
    i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))
    i, f, o, g = sigmoid(i), sigmoid(f), sigmoid(o), np.tanh(g)
    c_next = f * c + i * g
    return o * np.tanh(c_next), c_next


def random_step_inputs(gates: int, seed: int) -> tuple[dict, dict, np.ndarray]:
    """Float64 NumPy params (non-zero bias), a non-zero carry and an input, of O(1) size."""
    rng = np.random.default_rng(seed)
    params = {
        "w_x": rng.normal(0, 0.8, (INPUT, gates * HIDDEN)),
        "w_h": rng.normal(0, 0.8, (HIDDEN, gates * HIDDEN)),
        "b": rng.normal(0, 0.5, (gates * HIDDEN,)),
    }
    carry = {"h": rng.uniform(-0.9, 0.9, (BATCH, HIDDEN)), "c": rng.normal(0, 1.5, (BATCH, HIDDEN))}
    x = rng.normal(0, 1.0, (BATCH, INPUT))
    return params, carry, x


def run_step(cell: cells.Cell, params: dict, carry: dict, x: np.ndarray, dtype):
    """cell.forward from z = x @ w_x + h @ w_h + b on `dtype` copies of the NumPy inputs →
    (carry, h) as float64 NumPy."""
    cast = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    carry = {name: cast(carry[name]) for name in cell.carry_names}
    params = jax.tree.map(cast, params)
    z = cells.matmul(cast(x), params["w_x"]) + cells.matmul(carry["h"], params["w_h"]) + params["b"]
    new_carry, _ = cell.forward(carry, z)
    h = new_carry["h"]
    assert h.dtype == jnp.dtype(dtype)
    return jax.tree.map(lambda a: np.asarray(a, np.float64), (new_carry, h))


def test_rnn_matches_float64_reference():
    params, carry, x = random_step_inputs(gates=1, seed=0)
    expected = rnn_step_reference(params, carry["h"], x)
    with jax.enable_x64(True):
        new_carry, h = run_step(cells.RNN, params, carry, x, "float64")
    np.testing.assert_allclose(h, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(new_carry["h"], expected, rtol=0, atol=1e-12)
    assert set(new_carry) == {"h"}


def test_lstm_matches_float64_reference():
    params, carry, x = random_step_inputs(gates=4, seed=1)
    expected_h, expected_c = lstm_step_reference(params, carry["h"], carry["c"], x)
    with jax.enable_x64(True):
        new_carry, h = run_step(cells.LSTM, params, carry, x, "float64")
    np.testing.assert_allclose(h, expected_h, rtol=0, atol=1e-12)
    np.testing.assert_allclose(new_carry["h"], expected_h, rtol=0, atol=1e-12)
    np.testing.assert_allclose(new_carry["c"], expected_c, rtol=0, atol=1e-12)


def test_rnn_float32_step_is_within_1e_5_of_float64_reference():
    params, carry, x = random_step_inputs(gates=1, seed=2)
    expected = rnn_step_reference(params, carry["h"], x)
    _, h = run_step(cells.RNN, params, carry, x, "float32")
    np.testing.assert_allclose(h, expected, rtol=0, atol=1e-5)


def test_lstm_float32_step_is_within_1e_5_of_float64_reference():
    params, carry, x = random_step_inputs(gates=4, seed=3)
    expected_h, expected_c = lstm_step_reference(params, carry["h"], carry["c"], x)
    new_carry, h = run_step(cells.LSTM, params, carry, x, "float32")
    np.testing.assert_allclose(h, expected_h, rtol=0, atol=1e-5)
    np.testing.assert_allclose(new_carry["c"], expected_c, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name, gates", [("rnn", 1), ("lstm", 4)])
def test_init_shapes_are_input_by_gates_hidden(name, gates):
    params = zoo.get(name).init(jax.random.key(0), INPUT, HIDDEN)
    assert params["w_x"].shape == (INPUT, gates * HIDDEN)
    assert params["w_h"].shape == (HIDDEN, gates * HIDDEN)
    assert params["b"].shape == (gates * HIDDEN,)
    assert all(p.dtype == jnp.float32 for p in params.values())


def test_lstm_init_bias_is_forget_bias_on_forget_block_and_zero_elsewhere():
    params = cells.LSTM.init(jax.random.key(0), INPUT, HIDDEN, forget_bias=2.5)
    b = np.asarray(params["b"])
    np.testing.assert_array_equal(b[HIDDEN : 2 * HIDDEN], 2.5)
    np.testing.assert_array_equal(np.delete(b, np.s_[HIDDEN : 2 * HIDDEN]), 0.0)


def test_rnn_init_bias_is_zero_whatever_forget_bias():
    params = cells.RNN.init(jax.random.key(0), INPUT, HIDDEN, forget_bias=2.5)
    np.testing.assert_array_equal(params["b"], 0.0)


def recurrent_blocks(params: dict, hidden: int) -> list[np.ndarray]:
    w_h = np.asarray(params["w_h"], np.float64)
    return [w_h[:, k : k + hidden] for k in range(0, w_h.shape[1], hidden)]


@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_orthogonal_init_gives_scaled_orthogonal_blocks(name):
    scale, hidden = 0.7, 16
    params = zoo.get(name).init(
        jax.random.key(1), INPUT, hidden, recurrent_init="orthogonal", scale=scale
    )
    blocks = recurrent_blocks(params, hidden)
    for q in (block / scale for block in blocks):
        np.testing.assert_allclose(q.T @ q, np.eye(hidden), atol=1e-5)
    # The G blocks are drawn from different keys.
    assert all(not np.allclose(blocks[0], other) for other in blocks[1:])


@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_identity_init_gives_scale_times_identity_blocks(name):
    params = zoo.get(name).init(
        jax.random.key(1), INPUT, HIDDEN, recurrent_init="identity", scale=0.9
    )
    for block in recurrent_blocks(params, HIDDEN):
        np.testing.assert_allclose(block, 0.9 * np.eye(HIDDEN), rtol=1e-7)


@pytest.mark.parametrize("kind", ["normal", "uniform"])
def test_random_recurrent_init_has_std_scale_over_sqrt_hidden(kind):
    scale, hidden = 1.5, 256
    params = cells.RNN.init(jax.random.key(2), INPUT, hidden, recurrent_init=kind, scale=scale)
    w = np.asarray(params["w_h"], np.float64)
    # 65 536 entries: the std estimate's relative sd is ~0.3%, the mean's sd ~0.4% of the std.
    assert np.std(w) == pytest.approx(scale / np.sqrt(hidden), rel=0.02)
    assert abs(np.mean(w)) < 0.02 * scale / np.sqrt(hidden)


def test_uniform_recurrent_init_stays_within_its_limit():
    scale, hidden = 1.5, 64
    params = cells.RNN.init(jax.random.key(2), INPUT, hidden, recurrent_init="uniform", scale=scale)
    limit = scale * np.sqrt(3.0 / hidden)
    w = np.asarray(params["w_h"])
    assert np.max(np.abs(w)) <= limit
    assert np.max(np.abs(w)) > 0.95 * limit


@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_init_is_a_function_of_the_key(name):
    cell = zoo.get(name)
    first = cell.init(jax.random.key(3), INPUT, HIDDEN)
    again = cell.init(jax.random.key(3), INPUT, HIDDEN)
    other = cell.init(jax.random.key(4), INPUT, HIDDEN)
    for key in ("w_x", "w_h"):
        np.testing.assert_array_equal(first[key], again[key])
        assert not np.allclose(first[key], other[key])


def test_get_unknown_cell_raises_key_error_naming_allowed_cells():
    with pytest.raises(KeyError) as error:
        zoo.get("nope")
    message = error.value.args[0]
    assert "nope" in message and "rnn" in message and "lstm" in message


def test_get_returns_registered_cells():
    assert zoo.get("rnn") is cells.RNN and zoo.get("lstm") is cells.LSTM


def test_lstm_without_forget_gate_keeps_the_cell_state_whole():
    # The 1997 LSTM: c' = c + i·g, i.e. the reference with f ≡ 1 (forced by a huge forget bias).
    params, carry, x = random_step_inputs(gates=4, seed=5)
    saturated = dict(params, b=params["b"].copy())
    saturated["b"][HIDDEN : 2 * HIDDEN] = 1e3
    expected_h, expected_c = lstm_step_reference(saturated, carry["h"], carry["c"], x)
    with jax.enable_x64(True):
        new_carry, h = run_step(zoo.get("lstm", forget_gate=False), params, carry, x, "float64")
    np.testing.assert_allclose(new_carry["c"], expected_c, rtol=0, atol=1e-12)
    np.testing.assert_allclose(h, expected_h, rtol=0, atol=1e-12)


def test_forget_gate_option_is_ignored_by_the_rnn():
    assert zoo.get("rnn", forget_gate=False) is cells.RNN


def test_chrono_init_sets_log_uniform_forget_bias_and_opposite_input_bias():
    t_max, hidden = 100, 4096
    params = cells.LSTM.init(jax.random.key(0), 2, hidden, chrono=t_max, recurrent_init="identity")
    b = np.asarray(params["b"])
    b_i, b_f, rest = b[:hidden], b[hidden : 2 * hidden], b[2 * hidden :]
    np.testing.assert_array_equal(b_i, -b_f)
    np.testing.assert_array_equal(rest, 0.0)
    assert b_f.min() >= 0.0 and b_f.max() <= np.log(t_max - 1) + 1e-6
    # exp(b_f) ~ U[1, T_max − 1]: its mean is T_max/2 and its spread covers the range.
    np.testing.assert_allclose(np.exp(b_f).mean(), t_max / 2, rtol=0.05)
    assert np.exp(b_f).min() < 3 and np.exp(b_f).max() > t_max - 3
