"""Tasks: the adding and copy generators follow their definitions; losses, baselines, criteria."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_vg.core import tasks
from lstm_vg.results.format import RELATIONS, task_fields

# The unit tests share a few (length, batch) shapes: each new shape costs a compile.
ADDING_BATCH, COPY_BATCH = 64, 8


def check_adding_batch(length: int, batch: int, seed: int) -> None:
    """Shapes, the two-marker rule, the target and the value range of one adding batch."""
    xs, targets = tasks.Adding(length).sample(jax.random.key(seed), batch)
    assert xs.shape == (length, batch, 2) and targets.shape == (batch, 1)
    xs, targets = np.asarray(xs, np.float64), np.asarray(targets, np.float64)
    values, markers = xs[..., 0], xs[..., 1]
    assert np.all((values >= 0) & (values < 1))
    assert set(np.unique(markers)) <= {0.0, 1.0}
    half = length // 2
    for b in range(batch):
        marked = np.flatnonzero(markers[:, b])
        assert len(marked) == 2, f"example {b}: markers at {marked}"
        first, second = marked
        assert 0 <= first < half <= second < length
        expected = values[first, b] + values[second, b]
        assert targets[b, 0] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("length", [2, 7, 10])
def test_adding_batch_has_two_markers_one_per_half_and_target_is_their_sum(length):
    check_adding_batch(length, ADDING_BATCH, seed=length)


@settings(max_examples=15, deadline=None)  # each new shape compiles (~0.5 s)
@given(length=st.integers(2, 40), batch=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_adding_marker_rules_hold_for_any_length_and_batch(length, batch, seed):
    check_adding_batch(length, batch, seed)


def test_adding_markers_cover_both_halves():
    """Every allowed position is drawn eventually (not just the first step of each half)."""
    xs, _ = tasks.Adding(10).sample(jax.random.key(0), ADDING_BATCH)
    counts = np.asarray(xs[..., 1]).sum(axis=1)  # 64 draws over 5 positions per half
    assert np.all(counts > 0)


def test_adding_predicting_one_scores_the_baseline_loss():
    task, batch = tasks.Adding(4), 100_000
    _, targets = task.sample(jax.random.key(5), batch)
    mse = float(jnp.mean(task.losses(jnp.ones_like(targets), targets)))
    # (s − 1)² for s = U + U' has variance E[(s−1)⁴] − (1/6)² = 1/15 − 1/36 = 7/180.
    standard_error = math.sqrt(7 / 180 / batch)
    assert task.baseline_loss == pytest.approx(1 / 6, rel=1e-12)
    assert abs(mse - task.baseline_loss) < 5 * standard_error


def test_adding_losses_are_per_example_squared_errors():
    task = tasks.Adding(5)
    outputs = jnp.asarray([[0.5], [1.0], [2.0]])
    targets = jnp.asarray([[1.0], [1.0], [0.5]])
    losses = task.losses(outputs, targets)
    assert losses.shape == (3,)
    np.testing.assert_allclose(losses, [0.25, 0.0, 2.25], rtol=1e-7)


def test_adding_accuracy_counts_errors_below_0_04():
    task = tasks.Adding(5)
    errors = jnp.asarray([0.0, 0.039, -0.039, 0.04, -0.041, 0.5])[:, None]
    targets = jnp.zeros((6, 1))  # so that outputs − targets is exactly `errors`
    assert float(task.accuracy(errors, targets)) == pytest.approx(0.5)


def test_adding_solved_means_eval_loss_at_most_threshold():
    task = tasks.Adding(5, threshold=0.02)
    assert task.solved(eval_loss=0.02, eval_accuracy=0.0)
    assert task.solved(eval_loss=0.001, eval_accuracy=0.0)
    assert not task.solved(eval_loss=0.0201, eval_accuracy=1.0)
    assert tasks.Adding(5).solved(0.01, 0.0) and not tasks.Adding(5).solved(0.011, 1.0)


@pytest.mark.parametrize("length", [1, 5])
def test_copy_batch_layout_is_symbols_blanks_delimiter_blanks(length):
    task, batch = tasks.Copy(length), COPY_BATCH
    xs, targets = task.sample(jax.random.key(length), batch)
    assert xs.shape == (length + 20, batch, 10) and targets.shape == (length + 20, batch)
    assert task.sequence_length == length + 20
    xs, targets = np.asarray(xs), np.asarray(targets)
    assert set(np.unique(xs)) <= {0.0, 1.0}
    np.testing.assert_array_equal(xs.sum(axis=-1), 1.0)
    inputs = xs.argmax(axis=-1)  # (T+20, B) symbols
    data = inputs[:10]
    assert np.all((data >= 0) & (data <= 7))
    np.testing.assert_array_equal(inputs[10 : 10 + length - 1], 8)
    np.testing.assert_array_equal(inputs[10 + length - 1], 9)
    np.testing.assert_array_equal(inputs[length + 10 :], 8)
    np.testing.assert_array_equal(targets[: length + 10], 8)
    np.testing.assert_array_equal(targets[length + 10 :], data)


def test_copy_data_symbols_use_all_eight_values():
    xs, _ = tasks.Copy(5).sample(jax.random.key(0), COPY_BATCH)
    assert set(np.unique(np.asarray(xs[:10]).argmax(-1))) == set(range(8))


def blind_logits(length: int, batch: int) -> jax.Array:
    """The ideal input-blind predictor: certain blank for T+10 steps, then uniform over 0..7."""
    certain_blank = np.full(9, -1e4)
    certain_blank[8] = 0.0
    uniform_symbol = np.zeros(9)
    uniform_symbol[8] = -1e4
    per_step = [certain_blank] * (length + 10) + [uniform_symbol] * 10
    return jnp.asarray(np.broadcast_to(np.stack(per_step)[:, None, :], (length + 20, batch, 9)))


@pytest.mark.parametrize("length", [1, 5])
def test_copy_baseline_is_loss_of_ideal_blind_predictor(length):
    task, batch = tasks.Copy(length), COPY_BATCH
    _, targets = task.sample(jax.random.key(1), batch)
    losses = task.losses(blind_logits(length, batch), targets)
    assert losses.shape == (batch,)
    assert task.baseline_loss == pytest.approx(10 * math.log(8) / (length + 20), rel=1e-12)
    np.testing.assert_allclose(losses, task.baseline_loss, rtol=1e-6)


def one_hot_logits(classes) -> jax.Array:
    """Logits that put all but e⁻⁴⁰ of the probability on `classes`: (T', B) → (T', B, 9)."""
    return 40.0 * jax.nn.one_hot(jnp.asarray(classes), 9)


def test_copy_perfect_predictor_has_accuracy_one_and_zero_loss():
    task, batch = tasks.Copy(5), COPY_BATCH
    _, targets = task.sample(jax.random.key(2), batch)
    logits = one_hot_logits(targets)
    assert float(task.accuracy(logits, targets)) == 1.0
    np.testing.assert_allclose(task.losses(logits, targets), 0.0, atol=1e-6)


def test_copy_accuracy_counts_only_the_copied_symbols():
    task, batch = tasks.Copy(5), COPY_BATCH
    _, targets = task.sample(jax.random.key(3), batch)
    right = np.asarray(targets)
    wrong = right.copy()
    wrong[:15] = 0  # symbol 0 instead of blank on every step before the copy
    assert float(task.accuracy(one_hot_logits(wrong), targets)) == 1.0
    wrong[-1, :2] = (right[-1, :2] + 1) % 8  # 2 of the 8·10 copied symbols wrong
    assert float(task.accuracy(one_hot_logits(wrong), targets)) == pytest.approx(1 - 2 / 80)


def test_copy_solved_means_eval_accuracy_at_least_threshold():
    task = tasks.Copy(5, threshold=0.9)
    assert task.solved(eval_loss=10.0, eval_accuracy=0.9)
    assert not task.solved(eval_loss=0.0, eval_accuracy=0.89)
    assert tasks.Copy(5).solved(1.0, 0.99) and not tasks.Copy(5).solved(0.0, 0.98)


@pytest.mark.parametrize(
    "name, length, batch", [("adding", 10, ADDING_BATCH), ("copy", 5, COPY_BATCH)]
)
def test_same_key_gives_identical_batch_and_different_key_a_different_one(name, length, batch):
    task = tasks.make(name, length)
    xs, targets = task.sample(jax.random.key(7), batch)
    xs_again, targets_again = task.sample(jax.random.key(7), batch)
    xs_other, targets_other = task.sample(jax.random.key(8), batch)
    np.testing.assert_array_equal(xs, xs_again)
    np.testing.assert_array_equal(targets, targets_again)
    assert not np.array_equal(xs, xs_other) and not np.array_equal(targets, targets_other)


def test_make_keeps_default_threshold_unless_given():
    assert tasks.make("adding", 5).threshold == 0.01
    assert tasks.make("copy", 5).threshold == 0.99
    assert tasks.make("adding", 5, 0.05).threshold == 0.05


def test_get_unknown_task_raises_key_error_naming_allowed_tasks():
    with pytest.raises(KeyError) as error:
        tasks.get("nope")
    message = error.value.args[0]
    assert "nope" in message and "adding" in message and "copy" in message


@pytest.mark.parametrize("task", [tasks.Adding(5), tasks.Copy(5)], ids=lambda t: t.name)
def test_solved_agrees_with_the_criterion_the_results_record(task):
    # plots and reports read the criterion summary.json and meta.json record; training calls solved()
    fields = task_fields(task)
    relation = RELATIONS[fields["solved_relation"]]
    for value in (task.threshold - 1e-3, task.threshold, task.threshold + 1e-3):
        logged = {"eval_loss": 0.5, "eval_accuracy": 0.5, fields["solved_metric"]: value}
        expected = relation(value, fields["solved_threshold"])
        assert task.solved(logged["eval_loss"], logged["eval_accuracy"]) == expected


HS97 = tasks.make("adding", 40, variant="hochreiter1997")


def test_hochreiter1997_adding_follows_the_papers_rules():
    xs, targets = HS97.sample(jax.random.key(3), 4000)
    values, markers = np.asarray(xs[..., 0]), np.asarray(xs[..., 1])
    last = np.asarray(targets["last"])
    T = HS97.length
    assert xs.shape == (T + T // 10, 4000, 2) and last.min() >= T - 1 and last.max() <= T + T // 10 - 1
    assert set(np.unique(last + 1)) == set(range(T, T + T // 10 + 1))  # every length occurs
    for b in range(4000):
        ones = np.flatnonzero(markers[:, b] == 1)
        assert len(ones) == 2 and ones[0] < 10 and ones[1] < T // 2
        assert markers[last[b], b] == -1 and np.all(xs[last[b] + 1 :, b] == 0)
        assert markers[0, b] == (1 if ones[0] == 0 else -1)
        assert np.all(markers[1 : last[b], b][~np.isin(np.arange(1, last[b]), ones)] == 0)
        assert np.all(np.abs(values[: last[b] + 1, b]) <= 1)
        if ones[0] == 0:
            assert values[0, b] == 0  # a marked first pair contributes 0
        expected = 0.5 + values[ones, b].sum() / 4
        assert float(targets["target"][b, 0]) == pytest.approx(expected, abs=1e-6)


def test_hochreiter1997_second_marker_is_uniform_over_the_first_half_but_x1():
    xs, _ = HS97.sample(jax.random.key(4), 20000)
    markers = np.asarray(xs[..., 1])
    seconds = np.array([np.flatnonzero(markers[:, b] == 1) for b in range(20000)])
    # X1 and X2 together cover positions 0 … T/2 − 1 (20 of them)
    assert seconds.max() == HS97.length // 2 - 1 and seconds.min() == 0


def test_hochreiter1997_baseline_is_the_variance_of_the_target():
    _, targets = HS97.sample(jax.random.key(5), 200_000)
    y = np.asarray(targets["target"], np.float64)[:, 0]
    standard_error = y.var() * np.sqrt(2 / y.size) * 2  # generous: kurtosis of a sum of uniforms
    assert abs(np.mean((y - 0.5) ** 2) - HS97.baseline_loss) < 3 * standard_error


def test_hochreiter1997_loss_and_accuracy_read_each_sequences_last_step():
    xs, targets = HS97.sample(jax.random.key(6), 8)
    T_padded = xs.shape[0]
    outputs = np.full((T_padded, 8, 1), 99.0, np.float32)  # wrong everywhere …
    last = np.asarray(targets["last"])
    error = np.linspace(-0.06, 0.06, 8, dtype=np.float32)
    outputs[last, np.arange(8), 0] = np.asarray(targets["target"])[:, 0] + error  # … but at step L
    np.testing.assert_allclose(HS97.losses(jnp.asarray(outputs), targets), error**2, rtol=1e-5)
    assert float(HS97.accuracy(jnp.asarray(outputs), targets)) == np.mean(np.abs(error) < 0.04)


def test_hochreiter1997_needs_length_22_and_exists_only_for_adding():
    with pytest.raises(ValueError, match="≥ 22"):
        tasks.make("adding", 21, variant="hochreiter1997")
    with pytest.raises(KeyError, match="allowed: standard"):
        tasks.make("copy", 50, variant="hochreiter1997")
