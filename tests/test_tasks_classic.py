"""Temporal order and multiplication (Pascanu et al. 2013's code and Hochreiter & Schmidhuber 1997's
Experiments 5 and 6): the generators follow their definitions, re-derived here in NumPy from the
inputs; baselines, losses, accuracy, solved criteria, refused lengths, and the real CLI."""

import json
import math
from fractions import Fraction
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from lstm_vg.analysis.plots.connectivity import marked_steps
from lstm_vg.core import dynamics, model, tasks, zoo
from lstm_vg.results.format import RELATIONS, task_fields

from helpers import invoke

ORDER_VARIANTS = ("standard", "hochreiter1997", "hochreiter1997_6b")
RELEVANT_SYMBOLS = {"standard": 2, "hochreiter1997": 2, "hochreiter1997_6b": 3}
# The papers' windows at T = 100, 0-based steps [low, high): tempOrder.py's p0, p1 (half-open)
# and Hochreiter & Schmidhuber's t1, t2 (, t3) ("between 10 and 20": both ends included).
PAPER_WINDOWS = {"standard": [(10, 20), (50, 60)], "hochreiter1997": [(10, 21), (50, 61)],
                 "hochreiter1997_6b": [(10, 21), (33, 44), (66, 77)]}


def expected_windows(variant: str, T: int) -> list[tuple[int, int]]:
    """The windows as the sources compute them at length T (tempOrder.py in floats, int(l * .1))."""
    if variant == "standard":
        return [(int(T * .1), 2 * int(T * .1)), (int(T * .5), int(T * .5) + int(T * .1))]
    percents = [(10, 20), (50, 60)] if variant == "hochreiter1997" else [(10, 20), (33, 43), (66, 76)]
    return [(math.floor(T * p / 100), math.floor(T * q / 100) + 1) for p, q in percents]


def read_order(xs: np.ndarray, variant: str):
    """From one-hot inputs (T', B, I) alone: the steps of the relevant symbols (B, n), those
    symbols (B, n) and the class they make (first symbol the most significant bit), per sequence."""
    relevant = xs[..., :2].sum(axis=-1) == 1  # channels 0, 1: A/B or X/Y
    n = RELEVANT_SYMBOLS[variant]
    steps = np.array([np.flatnonzero(relevant[:, b]) for b in range(xs.shape[1])])
    assert steps.shape == (xs.shape[1], n)
    symbols = np.take_along_axis(xs[..., 1].T, steps, axis=1).astype(int)  # 1 where B / Y
    classes = sum(symbols[:, k] << (n - 1 - k) for k in range(n))
    return steps, symbols, classes


@pytest.mark.parametrize("variant", ORDER_VARIANTS)
@pytest.mark.parametrize("length", [100, 37])
def test_temporal_order_windows_and_classes_follow_the_sources(variant, length):
    task, batch = tasks.make("temporal_order", length, variant=variant), 3000
    xs, targets = task.sample(jax.random.key(length), batch)
    xs = np.asarray(xs)
    padded = length + (0 if variant == "standard" else length // 10)
    assert xs.shape == (padded, batch, task.input_size) and task.sequence_length == padded
    windows = expected_windows(variant, length)
    if length == 100:
        assert windows == PAPER_WINDOWS[variant]
    steps, _, classes = read_order(xs, variant)
    for k, (low, high) in enumerate(windows):
        assert set(np.unique(steps[:, k])) == set(range(low, high))  # every step of the window, no other
    labels = np.asarray(targets if variant == "standard" else targets["target"])
    np.testing.assert_array_equal(labels, classes)
    assert set(np.unique(labels)) == set(range(task.output_size))
    symbols = xs.argmax(axis=-1)
    if variant == "standard":
        assert np.all(xs.sum(axis=-1) == 1)
        others = np.ones_like(symbols, bool)
        others[steps.T, np.arange(batch)] = False
        assert set(np.unique(symbols[others])) == {2, 3, 4, 5}  # c, d, e, f everywhere else
        return
    last = np.asarray(targets["last"])
    assert set(np.unique(last + 1)) == set(range(length, padded + 1))  # every length L occurs
    inside = np.arange(padded)[:, None] <= last
    assert np.all(xs.sum(axis=-1) == inside)  # one-hot up to step L, all zeros after
    assert np.all(symbols[0] == 6) and np.all(symbols[last, np.arange(batch)] == 7)  # E first, B at L
    others = inside.copy()
    others[steps.T, np.arange(batch)] = False
    others[0] = False
    others[last, np.arange(batch)] = False
    assert set(np.unique(symbols[others])) == {2, 3, 4, 5}  # a, b, c, d everywhere else


@pytest.mark.parametrize("name, variant, minimum", [
    ("temporal_order", "standard", 10), ("temporal_order", "hochreiter1997", 10),
    ("temporal_order", "hochreiter1997_6b", 10), ("multiplication", "standard", 10)])
def test_windows_are_non_empty_and_disjoint_exactly_from_the_minimal_length(name, variant, minimum):
    """Non-empty, in order, apart, before the last step (which the class or the trigger takes),
    and after the 1997 variants' start symbol at step 0; one step shorter they are not."""
    cls = tasks.get(name, variant)
    starts_at = 0 if variant == "standard" else 1

    def valid(T):
        bounds = [b for window in cls.windows(T) for b in window]
        ordered = all(a < b for a, b in zip(bounds[::2], bounds[1::2], strict=True))  # non-empty
        return ordered and bounds[0] >= starts_at and all(np.diff(bounds) >= 0) and bounds[-1] <= T - 1

    assert cls.min_length == minimum
    assert all(valid(T) for T in range(minimum, 3000)) and not valid(minimum - 1)
    with pytest.raises(ValueError, match=f"length must be ≥ {minimum}, got {minimum - 1}"):
        tasks.make(name, minimum - 1, variant=variant)


@pytest.mark.parametrize("name, variant, length, message", [
    ("temporal_order", "standard", 9, "temporal_order: length must be ≥ 10, got 9"),
    ("temporal_order", "hochreiter1997_6b", 9, "temporal_order (hochreiter1997_6b): length must be ≥ 10"),
    ("multiplication", "standard", 9, "multiplication: length must be ≥ 10, got 9"),
    ("multiplication", "hochreiter1997", 21, "multiplication (hochreiter1997): length must be ≥ 22")])
def test_a_too_short_length_exits_2_with_one_line_and_no_traceback(tmp_path, name, variant, length, message):
    config = tmp_path / "short.yaml"
    config.write_text(yaml.safe_dump({"task": {"name": name, "length": length, "variant": variant}}))
    result = invoke("run", config, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {config}: task.length: {message}"), lines
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("variant", ORDER_VARIANTS)
def test_temporal_order_uniform_logits_score_exactly_ln_of_the_classes(variant):
    task = tasks.make("temporal_order", 20, variant=variant)
    xs, targets = task.sample(jax.random.key(0), 64)
    shape = (64, task.output_size) if variant == "standard" else (xs.shape[0], 64, task.output_size)
    losses = task.losses(jnp.zeros(shape), targets)
    assert task.baseline_loss == pytest.approx(math.log(task.output_size), rel=1e-15)
    np.testing.assert_allclose(losses, math.log(task.output_size), rtol=1e-6)
    assert float(task.accuracy(jnp.zeros(shape), targets)) == pytest.approx(np.mean(
        np.asarray(targets if variant == "standard" else targets["target"]) == 0))  # argmax of ties: 0


def test_temporal_order_predicting_the_label_prior_scores_ln_4():
    """The prior estimated on one batch, scored on another: −Σ p log q̂ = ln 4 + KL(p‖q̂), and KL is
    of order χ²₃/(2N) ≈ 1e-5 at N = 200 000, far inside 1e-3. The counts pass a χ² test of
    uniformity (3 degrees of freedom; 30 is exceeded with probability 1e-6)."""
    task, batch = tasks.TemporalOrder(10), 200_000
    _, prior_labels = task.sample(jax.random.key(1), batch)
    counts = np.bincount(np.asarray(prior_labels), minlength=4)
    assert np.sum((counts - batch / 4) ** 2 / (batch / 4)) < 30
    _, labels = task.sample(jax.random.key(2), batch)
    prior = jnp.broadcast_to(jnp.log(jnp.asarray(counts / batch)), (batch, 4))
    assert float(jnp.mean(task.losses(prior, labels))) == pytest.approx(math.log(4), abs=1e-3)


def test_temporal_order_losses_and_accuracy_on_hand_made_logits():
    task = tasks.TemporalOrder(10)
    logits = jnp.asarray([[0.0, math.log(3), 0.0, 0.0],  # p(1) = 1/2
                          [5.0, 0.0, 0.0, 0.0],
                          [0.0, 0.0, 0.0, math.log(5)]])  # p(3) = 5/8
    labels = jnp.asarray([1, 2, 3])
    np.testing.assert_allclose(task.losses(logits, labels),
                               [math.log(2), math.log(math.exp(5) + 3), math.log(8 / 5)],
                               rtol=1e-6)
    assert float(task.accuracy(logits, labels)) == pytest.approx(2 / 3)


@pytest.mark.parametrize("variant", ["hochreiter1997", "hochreiter1997_6b"])
def test_temporal_order_1997_reads_each_sequences_last_step(variant):
    task = tasks.make("temporal_order", 30, variant=variant)
    xs, targets = task.sample(jax.random.key(3), 8)
    labels, last = np.asarray(targets["target"]), np.asarray(targets["last"])
    C = task.output_size
    wrong = np.eye(C)[(labels + 1) % C] * 50.0  # confident and wrong everywhere …
    outputs = np.broadcast_to(wrong, (xs.shape[0], 8, C)).copy()
    right = np.arange(8) < 5
    outputs[last[right], np.arange(8)[right]] = np.eye(C)[labels[right]] * 50.0  # … but at L in 5 of 8
    losses = np.asarray(task.losses(jnp.asarray(outputs), targets))
    np.testing.assert_allclose(losses[right], 0.0, atol=1e-6)
    np.testing.assert_allclose(losses[~right], 50.0, rtol=1e-6)
    assert float(task.accuracy(jnp.asarray(outputs), targets)) == pytest.approx(5 / 8)


def test_multiplication_windows_and_target_follow_multiplication_py():
    T, batch = 57, 20000
    xs, targets = tasks.Multiplication(T).sample(jax.random.key(4), batch)
    xs, targets = np.asarray(xs, np.float64), np.asarray(targets, np.float64)
    assert xs.shape == (T, batch, 2) and targets.shape == (batch, 1)
    values, markers = xs[..., 0], xs[..., 1]
    assert np.all((values >= 0) & (values < 1)) and set(np.unique(markers)) == {0.0, 1.0}
    marked = np.array([np.flatnonzero(markers[:, b]) for b in range(batch)])  # (B, 2), sorted
    assert marked.shape == (batch, 2)
    tenth = int(T * .1)
    assert set(np.unique(marked[:, 0])) == set(range(0, tenth))
    assert set(np.unique(marked[:, 1])) == set(range(tenth, tenth + int(T * .4)))
    operands = np.take_along_axis(values.T, marked, axis=1)
    np.testing.assert_allclose(targets[:, 0], operands[:, 0] * operands[:, 1], rtol=1e-6)
    # two different steps, so independent: their correlation is 0 within 5 standard errors (1/√N)
    assert abs(np.corrcoef(operands.T)[0, 1]) < 5 / math.sqrt(batch)


def test_multiplication_predicting_a_quarter_scores_the_baseline_7_144():
    """Y = U·U' has E[Y^k] = 1/(k+1)²; the squared error (Y − 1/4)² has mean 7/144 and variance
    E[(Y − 1/4)⁴] − (7/144)², which sets the standard error of the batch mean."""
    task, batch = tasks.Multiplication(10), 200_000
    moment = [Fraction(1, (k + 1) ** 2) for k in range(5)]
    m = Fraction(1, 4)
    fourth = sum(math.comb(4, k) * moment[k] * (-m) ** (4 - k) for k in range(5))
    assert moment[2] - m**2 == Fraction(7, 144) and task.baseline_loss == pytest.approx(7 / 144, rel=1e-15)
    standard_error = math.sqrt(float(fourth - Fraction(7, 144) ** 2) / batch)  # 2.3e-4
    _, targets = task.sample(jax.random.key(5), batch)
    mse = float(jnp.mean(task.losses(jnp.full_like(targets, 0.25), targets)))
    assert abs(mse - 7 / 144) < 5 * standard_error


def test_multiplication_counts_squared_errors_up_to_0_04_as_right():
    """RNN.py: `error = (((t - y)**2).sum(axis=1) > .04).mean()`; |error| ≤ 0.2 is right."""
    task = tasks.Multiplication(10)
    errors = jnp.asarray([0.0, 0.1999, -0.1999, 0.2001, -0.2001, 0.5])[:, None]
    targets = jnp.zeros((6, 1))
    np.testing.assert_allclose(task.losses(errors, targets), np.asarray(errors)[:, 0] ** 2, rtol=1e-6)
    assert float(task.accuracy(errors, targets)) == pytest.approx(0.5)


MUL97 = tasks.make("multiplication", 40, variant="hochreiter1997")


def test_hochreiter1997_multiplication_follows_the_papers_rules():
    """Experiment 4's sequences (lengths, markers, −1 at both ends) with values U[0, 1], a marked
    first pair's value 1.0 and the target X1·X2 at step L."""
    batch, T = 2000, MUL97.length
    xs, targets = MUL97.sample(jax.random.key(6), batch)
    values, markers = np.asarray(xs[..., 0], np.float64), np.asarray(xs[..., 1])
    last = np.asarray(targets["last"])
    assert xs.shape == (T + T // 10, batch, 2)
    assert set(np.unique(last + 1)) == set(range(T, T + T // 10 + 1))
    first_marked = 0
    for b in range(batch):
        ones = np.flatnonzero(markers[:, b] == 1)
        assert len(ones) == 2 and ones[0] < 10 and ones[1] < T // 2
        assert markers[last[b], b] == -1 and np.all(xs[last[b] + 1:, b] == 0)
        assert np.all((values[: last[b] + 1, b] >= 0) & (values[: last[b] + 1, b] <= 1))
        if ones[0] == 0:
            assert values[0, b] == 1.0
            first_marked += 1
        expected = values[ones[0], b] * values[ones[1], b]
        assert float(targets["target"][b, 0]) == pytest.approx(expected, rel=1e-5)
    assert first_marked > 0  # the rule above was exercised


def test_hochreiter1997_multiplication_baseline_is_the_variance_of_the_target():
    """The sample variance (the MSE of predicting the mean) against the closed form, within 5
    standard errors of a variance estimate (√(Var((Y − Ȳ)²)/N), measured on the sample)."""
    _, targets = MUL97.sample(jax.random.key(7), 200_000)
    y = np.asarray(targets["target"], np.float64)[:, 0]
    squared = (y - y.mean()) ** 2
    assert abs(squared.mean() - MUL97.baseline_loss) < 5 * squared.std() / math.sqrt(y.size)


def test_hochreiter1997_multiplication_reads_the_last_step_with_0_04_tolerance():
    xs, targets = MUL97.sample(jax.random.key(8), 8)
    outputs = np.full((xs.shape[0], 8, 1), 99.0, np.float32)
    last = np.asarray(targets["last"])
    error = np.linspace(-0.06, 0.06, 8, dtype=np.float32)
    outputs[last, np.arange(8), 0] = np.asarray(targets["target"])[:, 0] + error
    np.testing.assert_allclose(MUL97.losses(jnp.asarray(outputs), targets), error**2, rtol=1e-4, atol=1e-9)
    assert float(MUL97.accuracy(jnp.asarray(outputs), targets)) == np.mean(np.abs(error) < 0.04)


NEW_TASKS = [tasks.make("temporal_order", 12), tasks.make("temporal_order", 12, variant="hochreiter1997"),
             tasks.make("temporal_order", 12, variant="hochreiter1997_6b"), tasks.make("multiplication", 12),
             MUL97]
IDS = [f"{t.name}-{getattr(t, 'variant', 'standard')}" for t in NEW_TASKS]


@pytest.mark.parametrize("task", NEW_TASKS, ids=IDS)
def test_same_key_gives_identical_batch_and_different_key_a_different_one(task):
    batch = task.sample(jax.random.key(7), 16)
    again, other = task.sample(jax.random.key(7), 16), task.sample(jax.random.key(8), 16)
    for a, b, c in zip(jax.tree.leaves(batch), jax.tree.leaves(again), jax.tree.leaves(other), strict=True):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


@pytest.mark.parametrize("task", NEW_TASKS, ids=IDS)
def test_solved_is_eval_accuracy_at_least_the_threshold_as_the_results_record(task):
    assert task.threshold == 0.99 and task_fields(task)["solved_metric"] == "eval_accuracy"
    assert task.solved(eval_loss=10.0, eval_accuracy=0.99) and not task.solved(0.0, 0.989)
    fields = task_fields(task)
    relation = RELATIONS[fields["solved_relation"]]
    for value in (0.98, 0.99, 1.0):
        assert task.solved(0.5, value) == relation(value, fields["solved_threshold"])
    stricter = tasks.make(task.name, task.length, 1.0, getattr(task, "variant", "standard"))
    assert stricter.solved(0.0, 1.0) and not stricter.solved(0.0, 0.9999)


def test_registries_list_the_new_tasks_and_their_variants():
    assert list(tasks.TASKS) == ["adding", "copy", "temporal_order", "multiplication", "pixels"]
    assert tasks.VARIANT_NAMES == ("standard", "hochreiter1997", "hochreiter1997_6b")
    with pytest.raises(KeyError) as error:
        tasks.get("multiplication", "hochreiter1997_6b")
    assert error.value.args[0].endswith("allowed: standard, hochreiter1997")
    with pytest.raises(KeyError, match="allowed: adding, copy, temporal_order, multiplication"):
        tasks.get("temporal")


@pytest.mark.parametrize("variant", ["standard", "hochreiter1997"])
def test_temporal_order_connectivity_differentiates_the_predicted_logit_at_the_last_step(variant):
    """Against jax.jacrev of the outputs (another route through autodiff)."""
    cell, task = zoo.get("lstm"), tasks.make("temporal_order", 10, variant=variant)
    params = model.init(cell, task, jax.random.key(0), 4)
    xs, targets = task.sample(jax.random.key(1), 2)
    measured = np.asarray(dynamics.input_connectivity(cell, task, params, xs, targets))
    outputs = np.asarray(model.apply(cell, task, params, xs))
    jacobian = np.asarray(jax.jacrev(partial(model.apply, cell, task, params))(xs))
    for b in range(2):
        if variant == "standard":
            picked = jacobian[b, np.argmax(outputs[b])]
        else:
            last = int(targets["last"][b])
            picked = jacobian[last, b, np.argmax(outputs[last, b])]
        expected = np.linalg.norm(picked[:, b], axis=-1)
        np.testing.assert_allclose(measured[:, b], expected, rtol=1e-5, atol=1e-9)


def test_the_connectivity_figure_marks_the_relevant_symbols_and_the_multiplication_markers():
    xs, _ = tasks.make("temporal_order", 30, variant="hochreiter1997_6b").sample(jax.random.key(9), 1)
    steps, _, _ = read_order(np.asarray(xs), "hochreiter1997_6b")
    marked, name = marked_steps("temporal_order", np.asarray(xs[:, 0]))
    np.testing.assert_array_equal(marked, steps[0] + 1)
    assert name.startswith("relevant symbol")
    xs, _ = tasks.Multiplication(30).sample(jax.random.key(9), 1)
    marked, _ = marked_steps("multiplication", np.asarray(xs[:, 0]))
    np.testing.assert_array_equal(marked, np.flatnonzero(np.asarray(xs[:, 0, 1])) + 1)


@pytest.mark.parametrize("name, variant, length, baseline", [
    ("temporal_order", "standard", 12, math.log(4)),
    ("temporal_order", "hochreiter1997_6b", 20, math.log(8)),
    ("multiplication", "standard", 12, 7 / 144)])
def test_run_and_plot_a_tiny_config_end_to_end(tmp_path, name, variant, length, baseline):
    config = tmp_path / "classic.yaml"
    config.write_text(yaml.safe_dump({
        "task": {"name": name, "length": length, "variant": variant}, "model": {"hidden": 4},
        "train": {"steps": 4, "batch": 8}, "log": {"every": 2, "eval_batch": 16, "probe_batch": 8,
                                                   "diagnostics": []}, "seeds": 1}))
    result = invoke("run", config, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    run = tmp_path / "classic" / "seed=0"
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["task"], summary["length"], summary["status"]) == (name, length, "done")
    assert summary["baseline_loss"] == pytest.approx(baseline, rel=1e-12)
    assert (summary["solved_metric"], summary["solved_relation"], summary["solved_threshold"]) == \
        ("eval_accuracy", ">=", 0.99)
    padded = length + (0 if variant == "standard" else length // 10)
    with np.load(run / "gradients.npz") as grads:
        assert grads["h_norms"].shape == (3, padded) and grads["c_norms"].shape == (3, padded)
        # step T − 1 is inside every sequence (the 1997 variants' end at T … T + ⌊T/10⌋)
        assert np.all(np.isfinite(grads["h_norms"])) and np.all(grads["h_norms"][:, length - 1] > 0)
    plotted = invoke("plot", tmp_path / "classic")
    assert plotted.exit_code == 0, plotted.output
    assert "warning" not in plotted.output
    assert any(p.name.endswith("learning-curves.png") for p in (tmp_path / "classic" / "plots").iterdir())
