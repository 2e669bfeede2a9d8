"""Per-timestep gradient norms and parameter gradients against a plain Python-loop reference."""

import functools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_vg.core import cells, gradients, model, tasks, zoo
from lstm_vg.results import summary

from reference import textbook_step

BATCH, HIDDEN = 3, 5
CELLS = ["rnn", "lstm", "gru"]
# 12, 22 and 24 steps
TASKS = [tasks.Adding(12), tasks.Copy(2), tasks.make("adding", 22, variant="hochreiter1997"),
         tasks.make("temporal_order", 12, variant="hochreiter1997")]


def every_cell_and_task(test):
    """Parametrize `test` over (name, task) for every cell and task variant."""
    ids = lambda task: f"{task.name}-{getattr(task, 'variant', 'standard')}"  # noqa: E731
    return pytest.mark.parametrize("name", CELLS)(pytest.mark.parametrize("task", TASKS, ids=ids)(test))


@functools.cache
def float64_problem(name: str, task):
    """Float64 params from `model.init` with every entry (biases included) moved off its init,
    a batch, and `gradients.loss_grads_and_norms` on them; cached, as the tests share them.

    Use the arrays inside `jax.enable_x64(True)`."""
    cell, rng = zoo.get(name), np.random.default_rng(0)
    with jax.enable_x64(True):
        # A normal recurrent init: the orthogonal one's QR costs seconds to compile.
        params = model.init(
            cell, task, jax.random.key(0), HIDDEN, dtype="float64", recurrent_init="normal"
        )
        params = jax.tree.map(lambda p: p + 0.3 * rng.standard_normal(p.shape), params)
        xs, targets = task.sample(jax.random.key(1), BATCH, "float64")
        ours = gradients.loss_grads_and_norms(cell, task, params, xs, targets)
    return params, xs, targets, ours


def python_loop_losses(cell: cells.Cell, task, params, xs, targets, deltas):
    """Per-example losses (B,) from T explicit textbook steps (tests/reference.py) in a Python
    loop; deltas[name][t] (B, H) perturbs state `name` at step t as it is made (c_t before h_t
    reads it), so ∂loss/∂deltas[s][t] is the total derivative ∂loss/∂s_t."""
    T, B, _ = xs.shape
    carry = {name: jnp.zeros((B, HIDDEN), xs.dtype) for name in cell.carry_names}
    outputs = []
    for t in range(T):
        carry = textbook_step(cell)(params["cell"], carry, xs[t], {n: d[t] for n, d in deltas.items()})
        outputs.append(carry["h"] @ params["readout"]["w"] + params["readout"]["b"])
    return task.losses(jnp.stack(outputs) if task.reads_every_step else outputs[-1], targets)


def zero_deltas(cell: cells.Cell, xs) -> dict:
    T, B, _ = xs.shape
    return {name: [jnp.zeros((B, HIDDEN), xs.dtype) for _ in range(T)] for name in cell.carry_names}


def python_loop_state_grad_norms(cell, task, params, xs, targets) -> dict[str, np.ndarray]:
    """{name_norms: (T,)}: mean_b ‖∂ℓ_b/∂s_t^{(b)}‖, read off the full Jacobian of the B losses;
    {name_reach: (T,)}: the fraction of b with ‖∂C/∂s_t^{(b)}‖² ≥ 1e-20, C = mean_b ℓ_b (as
    Pascanu et al.'s RNN.py counts `n_elems`)."""
    jacobian = jax.jacrev(lambda d: python_loop_losses(cell, task, params, xs, targets, d))(
        zero_deltas(cell, xs)
    )  # {name: T-list of (B losses, B, H)}
    norms = {}
    for name, per_step in jacobian.items():
        own = np.stack([[np.asarray(j)[b, b] for b in range(BATCH)] for j in per_step])  # (T, B, H)
        norms[f"{name}_norms"] = np.linalg.norm(own, axis=-1).mean(axis=1)
        norms[f"{name}_reach"] = np.mean(np.sum((own / BATCH) ** 2, axis=-1) >= 1e-20, axis=1)
    return norms


def python_loop_mean_loss(cell, task, params, xs, targets):
    return jnp.mean(python_loop_losses(cell, task, params, xs, targets, zero_deltas(cell, xs)))


@every_cell_and_task
def test_per_timestep_norms_match_unrolled_python_loop(name, task):
    cell = zoo.get(name)
    with jax.enable_x64(True):
        params, xs, targets, (_, _, norms) = float64_problem(name, task)
        expected = python_loop_state_grad_norms(cell, task, params, xs, targets)
    assert set(norms) == set(expected) == {f"{n}_{k}" for n in cell.carry_names for k in ("norms", "reach")}
    for key, reference in expected.items():
        assert norms[key].shape == (task.sequence_length,)
        if key.endswith("_reach"):
            np.testing.assert_array_equal(norms[key], reference, err_msg=key)
            continue
        # The check is not of zeros (c_T reaches the loss through h_T); past step T a sequence of
        # variable length may have ended in every example of the batch.
        inside = task.length if isinstance(task, tasks.VariableLength) else task.sequence_length
        assert np.all(reference[:inside] > 0)
        np.testing.assert_allclose(norms[key], reference, rtol=1e-5, atol=1e-14, err_msg=key)


def test_reach_counts_the_examples_above_pascanus_floor_step_by_step():
    """A contracting RNN (recurrent scale 0.05) whose error signal falls through 1e-10 within the
    sequence, at different steps for different examples."""
    cell, task = zoo.get("rnn"), tasks.Adding(12)
    with jax.enable_x64(True):
        params = model.init(cell, task, jax.random.key(6), HIDDEN, dtype="float64", recurrent_init="normal",
                            scale=0.05)
        xs, targets = task.sample(jax.random.key(4), BATCH, "float64")
        _, _, norms = gradients.loss_grads_and_norms(cell, task, params, xs, targets)
        expected = python_loop_state_grad_norms(cell, task, params, xs, targets)
    reach = np.asarray(norms["h_reach"])
    np.testing.assert_array_equal(reach, expected["h_reach"])
    assert reach[-1] == 1 and reach[0] == 0 and np.any((reach > 0) & (reach < 1))
    assert summary.steps_reached(reach) == pytest.approx(reach.mean())


@every_cell_and_task
def test_loss_and_parameter_gradients_are_those_of_batch_mean_loss(name, task):
    cell = zoo.get(name)
    with jax.enable_x64(True):
        params, xs, targets, (loss, grads, _) = float64_problem(name, task)
        expected_loss, expected_grads = jax.value_and_grad(python_loop_mean_loss, argnums=2)(
            cell, task, params, xs, targets
        )
    assert loss.dtype == jnp.float64
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-10)
    assert jax.tree.structure(grads) == jax.tree.structure(expected_grads)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        reference = np.asarray(expected_grads[path[0].key][path[1].key])
        assert np.any(reference != 0)
        np.testing.assert_allclose(g, reference, rtol=1e-10, atol=1e-13, err_msg=str(path))


def central_difference(loss, params: dict, group: str, leaf: str, index: tuple, step: float):
    """(loss(θ + step·e) − loss(θ − step·e)) / (2·step), e the unit vector of one entry:
    params[group][leaf][index]."""
    value = np.asarray(params[group][leaf])
    shifted = []
    for sign in (+1, -1):
        moved = value.copy()
        moved[index] += sign * step
        candidate = {g: dict(params[g]) for g in params}
        candidate[group][leaf] = jnp.asarray(moved)
        shifted.append(float(loss(candidate)))
    return (shifted[0] - shifted[1]) / (2 * step)


@pytest.mark.parametrize("name", CELLS)
def test_parameter_gradients_match_finite_differences(name):
    cell, task = zoo.get(name), TASKS[0]
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        params, xs, targets, (_, grads, _) = float64_problem(name, task)
        loss = jax.jit(lambda p: python_loop_mean_loss(cell, task, p, xs, targets))
        for group, leaf in [(g, k) for g in params for k in params[g]]:
            shape = params[group][leaf].shape
            for index in [tuple(int(rng.integers(n)) for n in shape) for _ in range(3)]:
                numeric = central_difference(loss, params, group, leaf, index, step=1e-5)
                analytic = float(grads[group][leaf][index])
                # Relative error, floored at 1e-3 so that near-zero entries are held to 1e-9.
                error = abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-3)
                assert error <= 1e-6, (group, leaf, index, numeric, analytic, error)


def test_vector_norm_of_tiny_float32_entries_does_not_underflow():
    rng = np.random.default_rng(0)
    x = (rng.uniform(0.5, 2.0, (4, 50)) * 1e-30).astype(np.float32)
    assert np.all(np.square(x) == 0)  # the naive sum of squares would give 0
    norms = np.asarray(gradients.vector_norm(jnp.asarray(x)))
    assert norms.dtype == np.float32 and np.all(norms > 0)
    np.testing.assert_allclose(norms, np.linalg.norm(x.astype(np.float64), axis=-1), rtol=1e-6)


def test_vector_norm_of_huge_float32_entries_is_not_zero():
    x = np.full((1, 4), 1e38, np.float32)  # ‖x‖ = 2e38 is still a finite float32
    norms = np.asarray(gradients.vector_norm(jnp.asarray(x)))
    np.testing.assert_allclose(norms, [2e38], rtol=1e-6)


def test_vector_norm_of_vector_with_infinite_entry_is_infinite():
    x = jnp.asarray([[1.0, np.inf, 2.0], [1.0, np.nan, 2.0]], jnp.float32)
    norms = np.asarray(gradients.vector_norm(x))
    np.testing.assert_array_equal(norms, [np.inf, np.nan])


def test_vector_norm_of_zero_vector_is_zero():
    norms = np.asarray(gradients.vector_norm(jnp.zeros((2, 7), jnp.float32)))
    np.testing.assert_array_equal(norms, 0.0)


def test_vector_norm_reduces_the_given_axis():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 11
    norms = gradients.vector_norm(jnp.asarray(x), axis=1)
    assert norms.shape == (2, 4)
    np.testing.assert_allclose(norms, np.linalg.norm(x.astype(np.float64), axis=1), rtol=1e-6)


def test_grad_ratio_is_first_over_last():
    assert summary.grad_ratio(np.array([3.0, 1.0, 0.25])) == pytest.approx(12.0)
    assert summary.grad_ratio(np.array([1e-12, 0.5], np.float32)) == pytest.approx(2e-12)


@pytest.mark.parametrize("last", [0.0, np.inf, -np.inf, np.nan])
def test_grad_ratio_is_none_when_last_is_zero_or_not_finite(last):
    assert summary.grad_ratio(np.array([1.0, 2.0, last])) is None


def autodiff_states(cell: cells.Cell, cell_params, xs, perturbations):
    """model.states without its hand-written backward: JAX differentiates a plain scan of the
    textbook step (tests/reference.py)."""
    textbook = textbook_step(cell)

    def step(carry, inputs):
        x_t, delta_t = inputs
        carry = textbook(cell_params, carry, x_t, delta_t)
        return carry, carry["h"]

    carry = cell.initial_carry(cell_params, xs.shape[1])
    return jax.lax.scan(step, carry, (xs, perturbations))[1]


@pytest.mark.parametrize("cell", [cells.RNN, cells.LSTM, zoo.get("lstm", forget_gate=False), zoo.get("gru")],
                         ids=["rnn", "lstm", "lstm-without-forget-gate", "gru"])
@pytest.mark.parametrize("perturbed", [False, True], ids=["", "perturbed"])
@pytest.mark.parametrize("remat, all_steps, I", [
    (0, True, 2), (1, True, 2), (3, True, 2), (7, True, 2), (0, False, 2), (3, False, 2),
    (0, True, model.NARROW_INPUT + 1), (3, False, model.NARROW_INPUT + 1),
], ids=lambda v: str(v))
def test_hand_written_backward_equals_autodiff_of_the_forward_scan(cell, perturbed, remat, all_steps, I):
    """Every cotangent of model.states (params, inputs and, with nonzero perturbations, each
    state) against jax.vjp of the plain scan, in float64, for an arbitrary cotangent of all h_t
    or of h_T alone (`all_steps`); with remat blocks of 1, 3 (T = 7 is not a multiple: zero
    padding) and 7 steps; inputs projected inside the scan (I = 2) and before it (I > NARROW_INPUT)."""
    T, B, H = 7, 3, HIDDEN
    rng = np.random.default_rng(1)
    normal = lambda *shape: jnp.asarray(rng.standard_normal(shape))  # noqa: E731
    with jax.enable_x64(True):
        shapes = cell.init(jax.random.key(0), I, H, jnp.float64, recurrent_init="normal")
        params = {name: normal(*p.shape) / (np.sqrt(H) if name == "w_h" else 1)
                  for name, p in shapes.items()}
        xs, d_hs = normal(T, B, I), normal(T, B, H)
        deltas = {n: 0.1 * normal(T, B, H) for n in cell.carry_names} if perturbed else None
        ours_hs, ours_vjp = jax.vjp(partial(model.states, cell, 1, remat, all_steps), params, xs, deltas)
        last = (lambda hs: hs) if all_steps else (lambda hs: hs[-1])
        hs, reference_vjp = jax.vjp(lambda *args: last(autodiff_states(cell, *args)), params, xs, deltas)
        d_hs = d_hs if all_steps else d_hs[-1]
        np.testing.assert_allclose(ours_hs, hs, rtol=1e-13, atol=1e-15)
        ours, reference = ours_vjp(d_hs), reference_vjp(d_hs)
    assert jax.tree.structure(ours) == jax.tree.structure(reference)
    for got, expected in zip(jax.tree.leaves(ours), jax.tree.leaves(reference), strict=True):
        assert np.any(np.asarray(expected) != 0)
        np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-13)
