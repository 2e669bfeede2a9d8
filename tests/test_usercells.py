"""The cell protocol: any cell trains through autodiff of a plain scan of its step, with the same
per-timestep norms; a researcher's cell file runs through the real CLI; a cell that breaks the
contract is refused before training in one line."""

import hashlib
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_gradients import BATCH, HIDDEN, TASKS, float64_problem

from lstm_vg.core import autodiff, cells, gradients, model, tasks, zoo

from helpers import ROOT, invoke

EXAMPLE = ROOT / "examples" / "minimal_rnn.py"
sys.path.insert(0, str(EXAMPLE.parent))
from minimal_rnn import MinimalRNN  # noqa: E402  (the shipped example cell, as a user writes it)


class AutodiffOnly:
    """A built-in cell seen through the protocol alone: no forward/backward, so the model takes
    the autodiff path through its `step`."""

    def __init__(self, cell):
        self.carry_names, self.init = cell.carry_names, cell.init
        self.initial_carry, self.step = cell.initial_carry, cell.step


def relative_error(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("name", ["rnn", "lstm", "lstm-without-forget-gate", "gru"])
@pytest.mark.parametrize("task", TASKS, ids=lambda t: f"{t.name}-{getattr(t, 'variant', 'standard')}")
def test_fast_and_autodiff_paths_give_the_same_loss_gradients_and_norms(name, task):
    """float64, ≤ 1e-10 relative: the hand-written backward pass and JAX's autodiff of the
    cell's protocol step agree on everything the tool logs and trains with."""
    cell = zoo.get("lstm", forget_gate=False) if name == "lstm-without-forget-gate" else zoo.get(name)
    params, xs, targets, _ = float64_problem(name.split("-")[0], task)
    with jax.enable_x64(True):
        fast = gradients.loss_grads_and_norms(cell, task, params, xs, targets)
        slow = gradients.loss_grads_and_norms(AutodiffOnly(cell), task, params, xs, targets)
    assert set(fast[2]) == set(slow[2]) == {f"{n}_{k}" for n in cell.carry_names for k in ("norms", "reach")}
    for got, expected in zip(jax.tree.leaves(slow), jax.tree.leaves(fast), strict=True):
        assert relative_error(got, expected) <= 1e-10


def test_a_step_without_delta_is_measured_after_it_makes_its_state():
    """The example cell (no `delta`) is the tanh RNN: with the built-in RNN's params its
    ‖∂L/∂h_t‖ profile and gradients are the built-in fast path's (h is made last in the step)."""
    task = tasks.Adding(12)
    params, xs, targets, _ = float64_problem("rnn", task)
    with jax.enable_x64(True):
        fast = gradients.loss_grads_and_norms(cells.RNN, task, params, xs, targets)
        user = gradients.loss_grads_and_norms(MinimalRNN(), task, params, xs, targets)
    for got, expected in zip(jax.tree.leaves(user), jax.tree.leaves(fast), strict=True):
        assert relative_error(got, expected) <= 1e-10


class ComplexDiagonal:
    """h_t = Re(s_t), s_t = λ ⊙ s_{t−1} + x_t @ w: a complex state beside the real h."""

    carry_names = ("h", "s")

    def init(self, key, input_size, hidden, dtype):
        return {"w": jax.random.normal(key, (input_size, hidden), dtype), "angle": jnp.linspace(0, 1, hidden)}

    def initial_carry(self, params, batch):
        hidden = params["w"].shape[1]
        return {"h": jnp.zeros((batch, hidden)), "s": jnp.zeros((batch, hidden), jnp.complex64)}

    def step(self, params, carry, x):
        s = 0.9 * jnp.exp(1j * params["angle"]) * carry["s"] + x @ params["w"]
        return {"h": s.real, "s": s}


def test_a_complex_state_is_measured_over_its_real_and_imaginary_parts():
    """‖∂L/∂s_t‖ of a complex state is the norm of (Re, Im) of its cotangent: checked against
    a perturbation of the real and imaginary parts as two real arrays."""
    cell, task = ComplexDiagonal(), tasks.Adding(6)
    params = model.init(cell, task, jax.random.key(0), 4)
    xs, targets = task.sample(jax.random.key(1), 3)
    _, _, norms = gradients.loss_grads_and_norms(cell, task, params, xs, targets)

    def summed(real, imag):
        deltas = {"h": jnp.zeros((6, 3, 4)), "s": real + 1j * imag}
        return jnp.sum(task.losses(model.apply(cell, task, params, xs, deltas), targets))

    zero = jnp.zeros((6, 3, 4))
    d_real, d_imag = jax.grad(summed, argnums=(0, 1))(zero, zero)
    expected = np.mean(np.sqrt(np.sum(np.asarray(d_real) ** 2 + np.asarray(d_imag) ** 2, -1)), 1)
    np.testing.assert_allclose(norms["s_norms"], expected, rtol=1e-5)
    assert norms["h_norms"].shape == (6,)


# ---- a researcher's cell through the real CLI ------------------------------------------------


def config_for(folder: Path, cell: str, model: str = "", train: str = "") -> Path:
    path = folder / "cell.yaml"
    path.write_text(f"name: mine\ntask: {{name: adding, length: 8}}\n"
                    f"model: {{cell: '{cell}', hidden: 4{model}}}\n"
                    f"train: {{steps: 10, batch: 4, chunk: 5{train}}}\n"
                    f"log: {{every: 5, eval_batch: 8, probe_batch: 4}}\nseeds: 2\n")
    return path


def test_the_example_cell_runs_resumes_and_plots_through_the_cli(tmp_path):
    copy = tmp_path / "minimal_rnn.py"
    copy.write_text(EXAMPLE.read_text())
    config = config_for(tmp_path, "minimal_rnn.py:MinimalRNN", ", options: {gain: 0.9}")
    result = invoke("run", config, "--out", tmp_path / "results")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "results" / "mine"
    runs = sorted(p.name for p in folder.iterdir())
    assert runs == ["seed=0", "seed=1"]
    meta = json.loads((folder / "seed=0" / "meta.json").read_text())
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    assert meta["cell_source"] == {"file": str(copy.resolve()), "sha256": digest}
    summary = json.loads((folder / "seed=0" / "summary.json").read_text())
    assert summary["cell"] == "minimal_rnn.py:MinimalRNN" and summary["status"] == "done"
    with np.load(folder / "seed=0" / "gradients.npz") as saved:
        assert saved["h_norms"].shape == (3, 8) and np.all(saved["h_norms"] > 0)
    assert "runs_in_batch" in meta and meta["runs_in_batch"] == 2  # the two seeds share a batch
    again = invoke("run", config, "--out", tmp_path / "results", "--resume")
    assert again.exit_code == 0 and "seed=0" not in again.output.split("results:")[0]  # kept
    copy.write_text(EXAMPLE.read_text() + "# edited since\n")  # other code: other runs, trained again
    edited = invoke("run", config, "--out", tmp_path / "results", "--resume")
    assert edited.exit_code == 0, edited.output
    meta = json.loads((folder / "seed=0" / "meta.json").read_text())
    assert meta["cell_source"]["sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest() != digest
    plotted = invoke("plot", folder)
    assert plotted.exit_code == 0 and "mine_gradient-decay.png" in plotted.output


def test_the_shipped_example_config_runs(tmp_path):
    result = invoke("run", ROOT / "examples" / "minimal_rnn.yaml", "--steps", 50, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "minimal_rnn").iterdir()) == [
        "cell=minimal_rnn.py:MinimalRNN,seed=0", "cell=minimal_rnn.py:MinimalRNN,seed=1",
        "cell=rnn,seed=0", "cell=rnn,seed=1"]


def test_a_cell_from_an_importable_module(tmp_path, monkeypatch):
    (tmp_path / "my_package").mkdir()
    (tmp_path / "my_package" / "__init__.py").write_text("")
    (tmp_path / "my_package" / "cells.py").write_text(EXAMPLE.read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    config = config_for(tmp_path, "my_package.cells:MinimalRNN")
    result = invoke("run", config, "--out", tmp_path / "results", "--steps", 5)
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "results" / "mine" / "seed=0" / "meta.json").read_text())
    assert meta["cell_source"]["module"] == "my_package.cells"


GOOD = EXAMPLE.read_text()
BROKEN = {
    "no step": (GOOD.replace("    def step(", "    def stop("), "MinimalRNN has no member 'step'"),
    "h of the wrong shape": (GOOD.replace('return {"h": jnp.tanh(', 'return {"h": 2 * jnp.tanh(')
                             .replace('+ params["b"])}', '+ params["b"])[:, :1]}'),
                             "step returned h of shape (2, 1)"),
    "h of the wrong dtype": (GOOD.replace('+ params["b"])}', '+ params["b"]).astype(jnp.float16)}'),
                             "step returned h of shape (2, 4) and dtype float16"),
    "non-finite params": (GOOD.replace('"b": jnp.zeros((hidden,), dtype)',
                                       '"b": jnp.full((hidden,), jnp.nan, dtype)'),
                          "init returned non-finite params"),
    "a file that does not import": (GOOD + "\nraise RuntimeError('no GPU here')\n",
                                    "does not import: RuntimeError: no GPU here"),
    "an unknown option": (GOOD, "MinimalRNN(**model.options) raised TypeError"),
    "no such class": (GOOD.replace("class MinimalRNN", "class Other"), "has no member 'MinimalRNN'"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_a_cell_that_breaks_the_contract_is_refused_in_one_line(tmp_path, case):
    source, expected = BROKEN[case]
    (tmp_path / "broken.py").write_text(source)
    model = ", options: {depth: 3}" if case == "an unknown option" else ""
    result = invoke("run", config_for(tmp_path, "broken.py:MinimalRNN", model), "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, lines
    assert f"{tmp_path / 'broken.py'}" in lines[0] and expected in lines[0], lines[0]
    assert not (tmp_path / "out" / "mine").exists()  # refused before anything was written


@pytest.mark.parametrize("cell, model, train, expected", [
    ("no_such_file.py:Cell", "", "", "no_such_file.py: no such file"),
    ("rnn", ", options: {gain: 2}", "", "model.options: the built-in cell 'rnn' takes no options"),
    ("minimal_rnn.py:MinimalRNN", ", forget_bias: 2.0", "",
     "model.forget_bias: minimal_rnn.py:MinimalRNN does not take it"),
    ("minimal_rnn.py:MinimalRNN", "", ", remat: 2", "train.remat: only cells with a hand-written backward"),
    ("not a reference", "", "",
     "'not a reference' is not allowed; allowed: rnn, lstm, gru, indrnn, exprnn, lru, or your own"),
    ("gru", ", forget_bias: 0.0", "", "model.forget_bias: only the LSTM takes it"),
    ("rnn", ", chrono: 100", "", "model.chrono: only the LSTM takes it"),
])
def test_options_and_references_a_cell_cannot_take_are_refused(tmp_path, cell, model, train, expected):
    (tmp_path / "minimal_rnn.py").write_text(GOOD)
    result = invoke("run", config_for(tmp_path, cell, model, train), "--out", tmp_path / "out", "--dry-run")
    assert result.exit_code == 2 and expected in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("cell, options, expected", [
    ("lru", "{r_min: 0.99, r_max: 0.9}", "need 0 ≤ r_min < r_max ≤ 1"),
    ("lru", "{radius: 2}", "unexpected keyword argument 'radius'"),
    ("indrnn", "{u_low: 1.0, u_high: 0.5}", "need u_low ≤ u_high"),
    ("indrnn", "{horizon: 0}", "need horizon ≥ 1"),
    ("exprnn", "{init: identity}", "init must be one of henaff, cayley, got 'identity'"),
    ("exprnn", "{orthogonal_lr_scale: 0}", "need orthogonal_lr_scale > 0"),
])
def test_bad_options_of_a_built_in_protocol_cell_are_refused_in_one_line(tmp_path, cell, options, expected):
    config = tmp_path / "cell.yaml"
    config.write_text(f"task: {{name: adding, length: 8}}\nmodel: {{cell: {cell}, options: {options}}}\n")
    result = invoke("run", config, "--out", tmp_path, "--dry-run")
    assert result.exit_code == 2 and expected in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_residual_estimate_bounds_what_reverse_mode_keeps():
    """The memory plan of an autodiff-path cell: at least the step's carry and input, and within
    a small factor of the built-in RNN fast path's estimate for the same sizes."""
    cell = MinimalRNN()
    params = cell.init(jax.random.key(0), 2, HIDDEN, jnp.float32)
    step = autodiff.step_residual_bytes(cell, params, BATCH, 2, jnp.float32)
    assert step >= 4 * BATCH * (HIDDEN + 2)
