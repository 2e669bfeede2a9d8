"""The dynamics probes (lstm_vg.core.dynamics) against independent computations: a linear RNN with
W = ρ·Q, whose exponents, product singular values and connectivity are known in closed form; a
random tanh RNN against a plain NumPy QR loop over its explicitly written Jacobians; every built-in
cell against the same loop over Jacobians built column by column."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from lstm_vg.core import dynamics, model, tasks, zoo

T, B, H, I = 12, 3, 5, 2
FAST = ("rnn", "lstm", "gru")


def make_cell(name: str, **options):
    return zoo.get(name) if name in FAST else zoo.make(name, task_length=T, **options)


class LinearRNN:
    """h_t = h_{t−1} W + x_t U (row vectors), W = ρ·Q with Q orthogonal."""

    carry_names = ("h",)

    def __init__(self, rho: float):
        self.rho = rho

    def init(self, key, input_size, hidden, dtype):
        key_q, key_u = jax.random.split(key)
        q = scipy.stats.ortho_group.rvs(hidden, random_state=int(jax.random.randint(key_q, (), 0, 2**31 - 1)))
        return {"w": self.rho * jnp.asarray(q, dtype),
                "u": jax.random.normal(key_u, (input_size, hidden), dtype)}

    def initial_carry(self, params, batch):
        return {"h": jnp.zeros((batch, params["w"].shape[0]), params["w"].dtype)}

    def step(self, params, carry, x):
        return {"h": carry["h"] @ params["w"] + x @ params["u"]}

    def recurrent_matrix(self, params):
        return params["w"]


def linear_setup(rho: float, seed: int = 0):
    cell = LinearRNN(rho)
    task = tasks.make("adding", T)
    params = model.init(cell, task, jax.random.key(seed), H, jnp.float64)
    xs, targets = task.sample(jax.random.key(seed + 1), B, jnp.float64)
    return cell, task, params, xs, targets


@pytest.mark.parametrize("rho", [0.8, 1.0, 1.3])
def test_every_lyapunov_exponent_of_a_scaled_orthogonal_linear_rnn_is_log_rho(rho):
    with jax.enable_x64(True):
        cell, _, params, xs, _ = linear_setup(rho)
        exponents = dynamics.lyapunov_exponents(cell, params["cell"], xs, H, jax.random.key(2))
        assert exponents.shape == (H,)
        np.testing.assert_allclose(np.asarray(exponents), np.log(rho), atol=1e-12)


def test_every_singular_value_of_the_linear_products_is_rho_to_the_t():
    with jax.enable_x64(True):
        cell, _, params, xs, _ = linear_setup(0.9)
        product = dynamics.jacobian_product(cell, params["cell"], xs)
        assert product.shape == (B, H, H)
        singular = np.linalg.svd(np.asarray(product), compute_uv=False)
        np.testing.assert_allclose(singular, 0.9 ** xs.shape[0], rtol=1e-10)


def test_linear_connectivity_is_c_w_to_the_t_minus_t_u():
    """ŷ = h_T C + b with h_T = Σ_t x_t U W^{T−t}: ∂ŷ/∂x_t = U W^{T−t} C."""
    with jax.enable_x64(True):
        cell, task, params, xs, targets = linear_setup(0.95)
        measured = np.asarray(dynamics.input_connectivity(cell, task, params, xs, targets))
        w, u = np.asarray(params["cell"]["w"]), np.asarray(params["cell"]["u"])
        c = np.asarray(params["readout"]["w"])
        steps = xs.shape[0]
        expected = [np.linalg.norm(u @ np.linalg.matrix_power(w, steps - 1 - t) @ c) for t in range(steps)]
        assert measured.shape == (steps, B)
        for b in range(B):  # linear: the same for every example
            np.testing.assert_allclose(measured[:, b], expected, rtol=1e-10)


def numpy_lyapunov(jacobians: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """jacobians: (T, B, D, D) → the mean over B of (1/T) Σ_t ln|diag R_t|, descending."""
    steps, batch = jacobians.shape[:2]
    totals = []
    for b in range(batch):
        q, total = frame, np.zeros(frame.shape[1])
        for t in range(steps):
            q, r = np.linalg.qr(jacobians[t, b] @ q)
            total += np.log(np.abs(np.diag(r)))
        totals.append(total / steps)
    return np.sort(np.mean(totals, axis=0))[::-1]


def test_tanh_rnn_exponents_match_a_numpy_qr_loop_over_written_out_jacobians():
    """h_t = tanh(h_{t−1} W + x_t U + b): J_t = diag(1 − h_t²) Wᵀ (column convention)."""
    with jax.enable_x64(True):
        cell = zoo.get("rnn")
        task = tasks.make("adding", T)
        params = model.init(cell, task, jax.random.key(3), H, jnp.float64, recurrent_init="normal", scale=1.5)
        xs, _ = task.sample(jax.random.key(4), B, jnp.float64)
        k = 3
        exponents = dynamics.lyapunov_exponents(cell, params["cell"], xs, k, jax.random.key(5))
        w, u, bias = (np.asarray(params["cell"][n]) for n in ("w_h", "w_x", "b"))
        h, jacobians = np.zeros((B, H)), []
        for x in np.asarray(xs):
            h = np.tanh(h @ w + x @ u + bias)
            jacobians.append([np.diag(1 - h[b] ** 2) @ w.T for b in range(B)])
        frame = np.asarray(dynamics.initial_frame(jax.random.key(5), H, k, jnp.float64))
        expected = numpy_lyapunov(np.asarray(jacobians), frame)
        np.testing.assert_allclose(np.asarray(exponents), expected, rtol=1e-10)
        assert expected[0] != expected[-1]


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "indrnn", "exprnn", "lru"])
def test_every_cells_exponents_match_a_loop_over_jacobians_built_by_jacfwd(name):
    """The linearize/vmap/QR scan against per-example Jacobians of the flattened step (the LSTM's
    (h, c), the LRU's complex x as real and imaginary parts)."""
    with jax.enable_x64(True):
        cell = make_cell(name)
        task = tasks.make("adding", T)
        params = model.init(cell, task, jax.random.key(6), 4, jnp.float64)["cell"]
        xs, _ = task.sample(jax.random.key(7), 2, jnp.float64)
        weights = params if not hasattr(cell, "prepare") else cell.prepare(params)
        carry = cell.initial_carry(weights, 2)
        jacobians = []
        for x in xs:
            s = dynamics.flatten_state(carry, cell.carry_names)
            per_example = []
            step = dynamics.step_map(cell, weights, carry, x)
            for b in range(2):
                def f(s_b, b=b, s=s, step=step):
                    return step(s.at[b].set(s_b))[b]
                per_example.append(np.asarray(jax.jacfwd(f)(s[b])))
            jacobians.append(per_example)
            carry = cell.step(weights, carry, x)
        k = 4
        D = np.asarray(jacobians).shape[-1]
        frame = np.asarray(dynamics.initial_frame(jax.random.key(8), D, k, jnp.float64))
        exponents = dynamics.lyapunov_exponents(cell, params, xs, k, jax.random.key(8))
        with np.errstate(divide="ignore"):
            expected = numpy_lyapunov(np.asarray(jacobians), frame)
        # A direction the step kills (IndRNN's dead ReLU units) has exponent −∞; both loops then
        # only show rounding noise there.
        finite = expected > -20
        assert finite[0]
        np.testing.assert_allclose(np.asarray(exponents)[finite], expected[finite], rtol=1e-9, atol=1e-9)
        assert np.all(np.asarray(exponents)[~finite] < -20)


def test_keep_gates_at_zero_weights_are_the_sigmoid_of_their_bias():
    task = tasks.make("adding", T)
    xs, _ = task.sample(jax.random.key(0), B)
    for name, bias in (("lstm", 1.5), ("gru", -0.5)):
        cell = zoo.get(name)
        params = jax.tree.map(jnp.zeros_like, model.init(cell, task, jax.random.key(1), H)["cell"])
        if name == "lstm":
            params["b"] = params["b"].at[H:2 * H].set(bias)
        else:
            params["b_x"] = params["b_x"].at[H:2 * H].set(bias)
        means = dynamics.keep_gate_means(cell, params, xs)
        np.testing.assert_allclose(np.asarray(means), 1 / (1 + np.exp(-bias)), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(dynamics.timescales(means)), 1 + np.exp(bias), rtol=1e-5)
    for name in ("rnn", "indrnn", "lru"):
        cell = make_cell(name)
        params = model.init(cell, task, jax.random.key(1), H)["cell"]
        assert dynamics.keep_gate_means(cell, params, xs) is None
    lstm_params = model.init(zoo.get("lstm"), task, jax.random.key(1), H)["cell"]
    assert dynamics.keep_gate_means(zoo.get("lstm", forget_gate=False), lstm_params, xs) is None


def test_recurrent_matrices_of_the_built_in_cells():
    task = tasks.make("adding", T)

    def matrix(name, **options):
        cell = make_cell(name, **options)
        params = model.init(cell, task, jax.random.key(0), H)["cell"]
        return params, dynamics.recurrent_matrix(cell, params)

    params, w = matrix("rnn")
    np.testing.assert_array_equal(w, params["w_h"])
    params, w = matrix("indrnn")
    np.testing.assert_array_equal(w, np.diag(params["u"]))
    _, w = matrix("exprnn")
    np.testing.assert_allclose(np.asarray(w).T @ np.asarray(w), np.eye(H), atol=1e-5)
    params, w = matrix("lru", r_min=0.5, r_max=0.7)
    moduli = np.abs(np.diag(np.asarray(w)))
    assert w.shape == (2 * H, 2 * H) and np.all((moduli >= 0.5 - 1e-6) & (moduli <= 0.7 + 1e-6))
    assert matrix("lstm")[1] is None and matrix("gru")[1] is None


def test_connectivity_of_each_task_differentiates_the_prediction_it_scores():
    """Against jax.jacrev of the per-example predictions (a different route through autodiff):
    adding's output, the 1997 variant's output at the sequence's last step, copy's predicted
    logits at the 10 recall steps."""
    cell = zoo.get("lstm")
    for task in (tasks.Adding(8), tasks.make("adding", 22, variant="hochreiter1997"), tasks.Copy(3)):
        params = model.init(cell, task, jax.random.key(0), 4)
        xs, targets = task.sample(jax.random.key(1), 2)
        measured = np.asarray(dynamics.input_connectivity(cell, task, params, xs, targets))
        outputs = model.apply(cell, task, params, xs)
        if task.name == "copy":
            recall = np.asarray(outputs[-10:])
            steps = np.arange(xs.shape[0] - 10, xs.shape[0])
            picks = [[(int(s), b, int(np.argmax(recall[i, b]))) for i, s in enumerate(steps)]
                     for b in range(2)]
        elif getattr(task, "variant", "standard") == "hochreiter1997":
            picks = [[(int(targets["last"][b]), b, 0)] for b in range(2)]
        else:
            picks = [[(None, b, 0)] for b in range(2)]
        jacobian = np.asarray(jax.jacrev(partial(model.apply, cell, task, params))(xs))
        for b in range(2):
            total = sum(jacobian[(b, o) if t is None else (t, b, o)] for t, _, o in picks[b])  # (T', B, I)
            np.testing.assert_allclose(measured[:, b], np.linalg.norm(total[:, b], axis=-1), rtol=1e-5,
                                       atol=1e-9)
        assert np.all(measured.max(axis=0) > 0)
