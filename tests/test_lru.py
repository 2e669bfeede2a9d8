"""The LRU: eigenvalues on the ring its options set, and an error signal that decays per unit as
|λ_j|^{T−t} exactly, measured through the tool's own zero perturbations."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_vg.analysis import grouping, plots
from lstm_vg.core import gradients, model, tasks, zoo

from helpers import invoke


def test_eigenvalues_start_on_the_ring_and_gamma_normalises_them():
    cell = zoo.make("lru", r_min=0.5, r_max=0.8, max_phase=0.3)
    params = cell.init(jax.random.key(0), 2, 64, jnp.float32)
    modulus = np.abs(np.asarray(cell.eigenvalues(params)))
    assert modulus.min() >= 0.5 - 1e-6 and modulus.max() <= 0.8 + 1e-6
    assert np.all(np.angle(np.asarray(cell.eigenvalues(params))) >= 0)
    assert np.all(np.angle(np.asarray(cell.eigenvalues(params))) <= 0.3 + 1e-6)
    gamma = np.concatenate([np.exp(layer["gamma_log"]) for layer in params["layers"]])
    np.testing.assert_allclose(gamma, np.sqrt(1 - modulus**2), rtol=1e-5)


@pytest.mark.parametrize("layers", [1, 2])
def test_each_units_error_signal_decays_as_its_eigenvalues_modulus_to_the_distance(layers):
    """Adding reads h_T only, so in the last layer ∂L/∂x_t = conj(λ)^{T−t} ⊙ ∂L/∂x_T per unit
    (float64). A lower layer's units also get the error through the layers above at every step,
    so theirs is no power of |λ| (docs/reproductions.md §7 measures both on trained runs)."""
    T, N = 12, 6
    cell, task = zoo.make("lru", r_min=0.6, r_max=0.95, layers=layers), tasks.Adding(T)
    with jax.enable_x64(True):
        params = model.init(cell, task, jax.random.key(0), N, "float64")
        xs, targets = task.sample(jax.random.key(1), 1, "float64")
        deltas = {"h": jnp.zeros((T, 1, N)), "x": jnp.zeros((T, 1, layers * N), jnp.complex128)}
        loss = lambda d: jnp.sum(task.losses(model.apply(cell, task, params, xs, d), targets))  # noqa: E731
        d_x = np.abs(np.asarray(jax.grad(loss)(deltas)["x"][:, 0]))  # (T, layers·N)
        modulus = np.abs(np.asarray(cell.eigenvalues(params["cell"])))
    power = modulus ** (T - 1 - np.arange(T))[:, None] * d_x[-1]
    last = slice((layers - 1) * N, layers * N)
    np.testing.assert_allclose(d_x[:, last], power[:, last], rtol=1e-9)
    if layers > 1:
        assert np.max(np.abs(d_x[:, :N] - power[:, :N]) / power[:, :N]) > 1e-2


def test_the_associative_scan_computes_what_the_scan_of_step_does():
    """Loss, parameter gradients and both norm profiles within 1e-12 (float64, copy: every step read)."""
    task = tasks.Copy(4)
    parallel, stepwise = zoo.make("lru", r_min=0.5, associative_scan=True), zoo.make("lru", r_min=0.5)
    assert parallel.sequence is not None and stepwise.sequence is None
    with jax.enable_x64(True):
        params = model.init(stepwise, task, jax.random.key(0), 6, "float64")
        xs, targets = task.sample(jax.random.key(1), 3, "float64")
        compute = jax.jit(gradients.loss_grads_and_norms, static_argnums=(0, 1))
        results = [compute(cell, task, params, xs, targets) for cell in (parallel, stepwise)]
    for got, expected in zip(*map(jax.tree.leaves, results), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_the_logged_profiles_cover_both_states():
    cell, task = zoo.make("lru"), tasks.Adding(10)
    params = model.init(cell, task, jax.random.key(0), 8)
    xs, targets = task.sample(jax.random.key(1), 4)
    _, _, norms = gradients.loss_grads_and_norms(cell, task, params, xs, targets)
    assert set(norms) == {"h_norms", "x_norms", "h_reach", "x_reach"}
    assert norms["x_norms"].shape == (10,) and np.all(np.asarray(norms["x_norms"]) > 0)


def test_an_lru_run_through_the_cli(tmp_path):
    config = tmp_path / "lru.yaml"
    config.write_text("name: lru\ntask: {name: adding, length: 8}\n"
                      "model: {cell: lru, hidden: 4, options: {r_min: 0.8, state_size: 6}}\n"
                      "train: {steps: 10, batch: 4, chunk: 5}\n"
                      "log: {every: 5, eval_batch: 8, probe_batch: 4}\n")
    result = invoke("run", config, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "lru" / "seed=0" / "gradients.npz") as saved:
        x_norms, h_norms = saved["x_norms"], saved["h_norms"]
    assert x_norms.shape == (3, 8) and np.all(h_norms[:, :-1] == 0)  # h_t is read only at T
    summary = json.loads((tmp_path / "lru" / "seed=0" / "summary.json").read_text())
    assert summary["cell"] == "lru" and summary["status"] == "done"
    # params.npz: every layer's arrays under numbered keys, loadable without pickle
    with np.load(tmp_path / "lru" / "seed=0" / "params.npz") as params:
        assert {"cell/layers/0/nu_log", "cell/layers/1/theta_log"} <= set(params)
        assert all(params[name].dtype != object for name in params)
    # the headline figures follow x, through which the error signal travels back
    assert summary["grad_profile"] == "x_norms"
    assert summary["grad_ratio_init"] == pytest.approx(x_norms[0, 0] / x_norms[0, -1], rel=1e-6)
    assert summary["steps_in_past_final"] == 1  # every step of every probe sequence
    assert invoke("plot", tmp_path / "lru").exit_code == 0
    # the decay figure draws x (not h, a readout) and names it in the ratio it prints
    [[experiment], _] = grouping.load_results(tmp_path / "lru")
    figure = plots.gradient_decay_figure(experiment.runs, "lru")
    drawn = {a.get_gid() for ax in figure.axes for a in ax.get_children() if a.get_gid()}
    assert {"lru:x_norms:init", "lru:x_norms:final"} <= drawn and not any("h_norms" in g for g in drawn)
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert any(t.startswith("‖∂L/∂x_1‖/‖∂L/∂x_T‖") for t in texts), texts
