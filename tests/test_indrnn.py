"""IndRNN: the adding-task recipe of its paper (init range and the clip 2^(1/T) after every
update) and an error signal that carries u_j^{T−t} per unit."""

import jax
import jax.numpy as jnp
import numpy as np

from lstm_vg.core import model, tasks, train, zoo

from helpers import invoke

T = 10


def test_the_recurrent_weights_start_in_the_papers_range_and_inputs_are_small():
    cell = zoo.make("indrnn", horizon=T)
    params = cell.init(jax.random.key(0), 2, 512, jnp.float32)
    u = np.asarray(params["u"])
    assert u.min() >= 2 ** (-1 / T) - 1e-6 and u.max() <= 2 ** (1 / T) + 1e-6
    assert 0.0008 < np.std(np.asarray(params["w_x"])) < 0.0012


def test_every_update_keeps_u_within_the_clip():
    """An lr far too large pushes u out; the constraint brings it back to |u| ≤ 2^(1/T)."""
    trainer = train.Trainer(zoo.make("indrnn", horizon=T), tasks.Adding(T), hidden=8, batch=8,
                            chunk_steps=3, eval_batch=8, probe_batch=8, clip=0.0)
    state = trainer.init_state(0, learning_rate=5.0)
    before = np.asarray(state.params["cell"]["u"])
    state, _ = jax.jit(trainer.chunk)(state)
    u = np.asarray(state.params["cell"]["u"])
    assert not np.allclose(u, before) and np.abs(u).max() <= 2 ** (1 / T) + 1e-6


def test_each_units_error_signal_carries_u_to_the_distance():
    """With every pre-activation positive (the ReLU passes), ∂L/∂h_t = u^{T−t} ⊙ ∂L/∂h_T."""
    cell, task = zoo.make("indrnn", horizon=T), tasks.Adding(T)
    with jax.enable_x64(True):
        params = model.init(cell, task, jax.random.key(0), 4, "float64")
        u = jnp.asarray([0.5, 0.9, 1.0, 1.05])
        params["cell"] = {"w_x": jnp.zeros((2, 4)), "u": u, "b": jnp.ones(4)}
        xs, targets = task.sample(jax.random.key(1), 1, "float64")
        loss = lambda d: jnp.sum(task.losses(model.apply(cell, task, params, xs, d), targets))  # noqa: E731
        d_h = np.asarray(jax.grad(loss)({"h": jnp.zeros((T, 1, 4))})["h"][:, 0])
    distance = (T - 1 - np.arange(T))[:, None]
    np.testing.assert_allclose(d_h, np.asarray(u) ** distance * d_h[-1], rtol=1e-12)


def test_an_indrnn_run_takes_its_horizon_from_the_task(tmp_path):
    config = tmp_path / "ind.yaml"
    config.write_text("name: ind\ntask: {name: adding, length: 8}\nmodel: {cell: indrnn, hidden: 4}\n"
                      "train: {steps: 10, batch: 4, chunk: 5}\n"
                      "log: {every: 5, eval_batch: 8, probe_batch: 4}\n")
    result = invoke("run", config, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "ind" / "seed=0" / "params.npz") as saved:
        assert np.abs(saved["cell/u"]).max() <= 2 ** (1 / 8) + 1e-6
