"""expRNN: W_h = expm(S) with S skew is orthogonal at init and after training; its step against a
float64 NumPy/SciPy loop, its gradient through expm against finite differences; A's learning rate
10× smaller is optax.multi_transform with two learning rates."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from lstm_vg.core import exprnn, model, tasks, train, zoo

from helpers import invoke

H = 6


def orthogonality_error(w) -> float:
    w = np.asarray(w, np.float64)
    return float(np.abs(w.T @ w - np.eye(len(w))).max())


@pytest.mark.parametrize("init", exprnn.INITS)
def test_the_inits_are_rotation_blocks_of_the_papers_angles(init):
    """expm of the 2×2 block [[0, θ], [−θ, 0]] is the rotation [[cos θ, sin θ], [−sin θ, cos θ]]."""
    params = zoo.make("exprnn", init=init).init(jax.random.key(0), 2, H, jnp.float32)
    w = np.asarray(exprnn.recurrent_matrix(params), np.float64)
    theta = np.asarray(params["log_w_h"])[np.arange(0, H, 2), np.arange(1, H, 2)]
    low, high = (-np.pi, np.pi) if init == "henaff" else (-1.0, 0.0)  # cayley: −tan(φ/2), φ < π/2
    assert np.all((theta >= low) & (theta <= high)) and np.all(theta != 0)
    expected = np.zeros((H, H))
    for k, angle in enumerate(theta):
        c, s = np.cos(angle), np.sin(angle)
        expected[2 * k:2 * k + 2, 2 * k:2 * k + 2] = [[c, s], [-s, c]]
    np.testing.assert_allclose(w, expected, atol=1e-6)
    w_x = zoo.make("exprnn").init(jax.random.key(1), 8, 512, jnp.float32)["w_x"]
    assert 1.3 < np.std(np.asarray(w_x)) * np.sqrt(8) < 1.5  # Kaiming for a ReLU: √2


def float64_case():
    cell, task = zoo.make("exprnn"), tasks.Adding(7)
    with jax.enable_x64(True):
        params = model.init(cell, task, jax.random.key(0), H, "float64")
        params["cell"]["log_w_h"] = jax.random.normal(jax.random.key(2), (H, H), jnp.float64)
        params["cell"]["b"] = jnp.linspace(-0.5, 0.2, H)
        xs, targets = task.sample(jax.random.key(1), 3, "float64")
    return cell, task, params, xs, targets


def test_the_step_is_the_papers_modrelu_rnn_and_expm_is_differentiated_exactly():
    cell, task, params, xs, targets = float64_case()
    p = jax.tree.map(np.asarray, params)
    a = np.triu(p["cell"]["log_w_h"], 1)
    w_h = scipy.linalg.expm(a - a.T)
    h = np.zeros((3, H))
    for x in np.asarray(xs):
        z = x @ p["cell"]["w_x"] + h @ w_h
        h = np.sign(z) * np.maximum(np.abs(z) + p["cell"]["b"], 0)
    expected = h @ p["readout"]["w"] + p["readout"]["b"]

    @jax.jit
    def loss(params):
        return jnp.sum(task.losses(model.apply(cell, task, params, xs), targets))

    with jax.enable_x64(True):
        np.testing.assert_allclose(model.apply(cell, task, params, xs), expected, rtol=1e-12)
        grad = np.asarray(jax.grad(loss)(params)["cell"]["log_w_h"])
        for i, j in [(0, 1), (1, 4), (2, 5), (3, 0)]:  # (3, 0): below the diagonal, unused
            step = np.zeros((H, H))
            step[i, j] = 1e-6
            shifted = [params | {"cell": params["cell"] | {"log_w_h": params["cell"]["log_w_h"] + s}}
                       for s in (step, -step)]
            numeric = (loss(shifted[0]) - loss(shifted[1])) / 2e-6
            assert grad[i, j] == pytest.approx(float(numeric), rel=1e-6, abs=1e-9)
    assert grad[3, 0] == 0


def test_the_orthogonal_parameters_learn_ten_times_slower_as_with_multi_transform():
    """Three RMSprop steps of the Trainer equal optax.multi_transform with lr and lr/10."""
    cell, task = zoo.make("exprnn"), tasks.Adding(7)
    lr = 1e-2
    with jax.enable_x64(True):
        trainer = train.Trainer(cell, task, hidden=H, batch=4, chunk_steps=3, eval_batch=4, probe_batch=4,
                                optimizer="rmsprop", clip=0.0, dtype="float64")
        state = trainer.init_state(0, lr)
        params = state.params
        labels = jax.tree.map(lambda _: "rest", params)
        labels["cell"]["log_w_h"] = "orthogonal"
        reference = optax.multi_transform({"rest": optax.rmsprop(lr), "orthogonal": optax.rmsprop(lr / 10)},
                                          labels)
        opt_state = reference.init(params)
        for step in range(3):
            key = jax.random.fold_in(jax.random.fold_in(state.key, train.DATA), step)
            xs, targets = task.sample(key, 4, "float64")
            grads = jax.grad(trainer.mean_loss)(params, xs, targets)
            updates, opt_state = reference.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
        trained, _ = trainer.chunk(state)
    for got, expected in zip(jax.tree.leaves(trained.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    moved = np.abs(np.asarray(trained.params["cell"]["log_w_h"] - state.params["cell"]["log_w_h"]))
    assert moved[np.triu_indices(H, 1)].min() > 0  # every used entry of A took part


def test_a_trained_exprnn_keeps_an_orthogonal_recurrent_matrix(tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text("name: exp\ntask: {name: copy, length: 6}\nmodel: {cell: exprnn, hidden: 8, "
                      "options: {init: cayley}}\ntrain: {steps: 40, batch: 8, chunk: 20, lr: 0.05}\n"
                      "log: {every: 20, eval_batch: 8, probe_batch: 4}\n")
    result = invoke("run", config, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "exp" / "seed=0" / "params.npz") as saved:
        log_w_h = saved["cell/log_w_h"]
    start = zoo.make("exprnn", init="cayley").init(jax.random.key(0), 10, 8, jnp.float32)["log_w_h"]
    assert np.abs(np.triu(log_w_h - np.asarray(start), 1)).max() > 1e-3  # it trained
    with jax.enable_x64(True):
        exact = exprnn.recurrent_matrix({"log_w_h": jnp.asarray(log_w_h, jnp.float64)})
        assert orthogonality_error(exact) < 1e-12
    assert orthogonality_error(exprnn.recurrent_matrix({"log_w_h": jnp.asarray(log_w_h)})) < 1e-5


def test_a_user_cell_with_the_optional_members_trains_as_the_built_in_does(tmp_path):
    """prepare and learning_rate_scales reach the trainer through a researcher's cell file."""
    from lstm_vg.training import usercells

    (tmp_path / "mine.py").write_text("from lstm_vg.core.exprnn import ExpRNN as Mine\n")
    user = usercells.load("mine.py:Mine", (("init", "cayley"),), str(tmp_path), "test")
    usercells.check(user, 10, 8, jnp.float32)
    states = []
    for cell in (user, zoo.make("exprnn", init="cayley")):
        trainer = train.Trainer(cell, tasks.Copy(6), hidden=8, batch=4, chunk_steps=3, eval_batch=4,
                                probe_batch=4, optimizer="rmsprop")
        states.append(jax.jit(trainer.chunk)(trainer.init_state(0, 1e-2))[0])
    jax.tree.map(np.testing.assert_array_equal, states[0].params, states[1].params)
