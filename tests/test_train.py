"""The shared training loop: it learns, batches runs faithfully, is deterministic, compiles once."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_vg import config
from lstm_vg.core import batched, tasks, train, zoo
from lstm_vg.training import loop, plan


def tiny_trainer(cell="lstm", task="adding", length=10, **overrides) -> train.Trainer:
    options = dict(hidden=16, batch=32, chunk_steps=25, eval_batch=256, probe_batch=16)
    return train.Trainer(zoo.get(cell), tasks.make(task, length), **(options | overrides))


@functools.cache
def compiled(trainer, vectorize):
    """One pair of jitted functions per trainer, so runs of the same shapes compile once."""
    return batched.compile_batched(trainer, vectorize=vectorize)


def train_runs(trainer, seeds, lrs, chunks, vectorize=None):
    states = batched.stack([trainer.init_state(s, lr) for s, lr in zip(seeds, lrs, strict=True)])
    chunk, evaluate = compiled(trainer, vectorize)
    for _ in range(chunks):
        states, _ = chunk(states)
    return states, jax.device_get(evaluate(states))


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_tiny_adding_run_learns_well_below_baseline(cell):
    trainer = tiny_trainer(cell)
    before = jax.device_get(jax.jit(trainer.evaluate)(trainer.init_state(0, 1e-2)))
    _, logged = train_runs(trainer, [0], [1e-2], chunks=16)
    # T=10 is short enough for both cells; the baseline is 1/6.
    assert logged["eval_loss"][0] < 0.25 * trainer.task.baseline_loss < before["eval_loss"]


def test_tiny_copy_run_beats_baseline():
    trainer = tiny_trainer("lstm", "copy", length=3, hidden=32)
    _, logged = train_runs(trainer, [0], [1e-2], chunks=16)
    # Below the blind baseline, and recalling symbols at twice the chance rate of 1/8.
    assert logged["eval_loss"][0] < 0.9 * trainer.task.baseline_loss
    assert logged["eval_accuracy"][0] > 2 / trainer.task.symbols


@pytest.mark.parametrize("vectorize", [False, True], ids=["lax.map", "vmap"])
def test_batched_runs_equal_separate_runs(vectorize):
    """Runs trained together equal the same runs trained alone: bit for bit when they run one
    after another (lax.map, the CPU default), to rounding when vmapped."""
    trainer = tiny_trainer("lstm")
    together, logged = train_runs(trainer, [0, 1, 2], [1e-3, 3e-3, 1e-2], chunks=2, vectorize=vectorize)
    same = np.testing.assert_allclose if vectorize else np.testing.assert_array_equal
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if vectorize else {}
    for r, (seed, lr) in enumerate([(0, 1e-3), (1, 3e-3), (2, 1e-2)]):
        alone, logged_alone = train_runs(trainer, [seed], [lr], chunks=2, vectorize=vectorize)
        for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(together.params), strict=True):
            same(a[0], b[r], **tolerance)
        for key in ("h_norms", "c_norms", "eval_loss"):
            same(logged_alone[key][0], logged[key][r], **tolerance)


def test_same_seed_gives_identical_numbers():
    trainer = tiny_trainer("rnn")
    first, logged_first = train_runs(trainer, [7], [1e-3], chunks=2)
    second, logged_second = train_runs(trainer, [7], [1e-3], chunks=2)
    for a, b in zip(jax.tree.leaves(first.params), jax.tree.leaves(second.params), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(logged_first["h_norms"], logged_second["h_norms"])


def test_different_seeds_differ():
    trainer = tiny_trainer("rnn")
    states, _ = train_runs(trainer, [0, 1], [1e-3, 1e-3], chunks=1)
    assert not np.allclose(states.params["cell"]["w_h"][0], states.params["cell"]["w_h"][1])


def test_step_counter_and_per_step_metrics():
    trainer = tiny_trainer("lstm", chunk_steps=7)
    state = trainer.init_state(0, 1e-3)
    state, metrics = jax.jit(trainer.chunk)(state)
    assert int(state.step) == 7
    assert metrics["loss"].shape == metrics["grad_norm"].shape == (7,)
    assert np.all(np.isfinite(metrics["loss"]))


def test_learning_rate_comes_from_each_runs_state():
    trainer = tiny_trainer("lstm")
    states, _ = train_runs(trainer, [0, 0], [1e-3, 1e-2], chunks=1)
    fresh = trainer.init_state(0, 1e-3).params["cell"]["w_h"]
    moved = [float(jnp.abs(states.params["cell"]["w_h"][r] - fresh).max()) for r in (0, 1)]
    assert moved[1] > 3 * moved[0]


@pytest.mark.parametrize("optimizer", ["rmsprop", "sgd"])
def test_other_optimizers_train(optimizer):
    trainer = tiny_trainer("lstm", optimizer=optimizer, clip=0.0)
    _, logged = train_runs(trainer, [0], [1e-2 if optimizer == "rmsprop" else 0.1], chunks=4)
    assert np.isfinite(logged["eval_loss"]).all()


def test_float64_training_keeps_float64():
    with jax.enable_x64(True):
        trainer = tiny_trainer("lstm", dtype="float64")
        states, logged = train_runs(trainer, [0], [1e-3], chunks=1)
    assert states.params["cell"]["w_h"].dtype == jnp.float64
    assert logged["h_norms"].dtype == np.float64


def test_batches_group_runs_that_share_shapes():
    c = config.from_mapping(
        {"seeds": 2, "sweep": {"model.cell": ["rnn", "lstm"], "train.lr": [1e-3, 1e-2],
                               "model.forget_bias": [0.0, 1.0], "model.chrono": [None, 50]}}, "x")
    groups = plan.batches(config.expand(c))
    assert [len(g) for g in groups] == [16, 16]
    assert {r.config.model.cell for r in groups[0]} == {"rnn"}


def test_runs_without_a_forget_gate_form_their_own_batch():
    c = config.from_mapping({"sweep": {"model.forget_gate": [True, False]}}, "x")
    assert [len(g) for g in plan.batches(config.expand(c))] == [1, 1]


def count_compiles(fn) -> int:
    events = []

    def listener(name, *args, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        fn()
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return len(events)


def test_compiled_chunk_and_evaluate_never_recompile():
    trainer = tiny_trainer("lstm", chunk_steps=5)
    states = batched.stack([trainer.init_state(s, 1e-3) for s in (0, 1)])
    chunk, evaluate = batched.compile_batched(trainer)
    states, _ = chunk(states)
    evaluate(states)

    def more():
        nonlocal states
        for _ in range(4):
            states, _ = chunk(states)
            jax.device_get(evaluate(states))

    assert count_compiles(more) == 0


def test_whole_run_compiles_the_same_whatever_its_length(tmp_path):
    def run(steps, out):
        c = config.from_mapping(
            {"task": {"length": 8}, "model": {"hidden": 4}, "seeds": 2,
             "train": {"steps": steps, "batch": 4, "chunk": 5},
             "log": {"every": 10, "eval_batch": 8, "probe_batch": 4}}, "x")
        loop.run_experiment(c, tmp_path / out)

    run(10, "warm")  # eager helpers compile once per process
    assert count_compiles(lambda: run(10, "short")) == count_compiles(lambda: run(60, "long"))


def test_a_diverging_run_is_frozen_and_leaves_its_batch_mates_alone():
    """One run with an absurd learning rate among normal ones: it stops at its last finite
    state with the step marked, and the others equal, bit for bit, a batch without it."""
    trainer = tiny_trainer("lstm", optimizer="sgd", clip=0.0, momentum=0.0, chunk_steps=10)
    chunk, evaluate = batched.compile_batched(trainer)
    lrs = [1e-2, 3e-2, 1e30]
    states = batched.stack([trainer.init_state(seed, lr) for seed, lr in enumerate(lrs)])
    states, first = chunk(states)
    states, second = chunk(states)
    logged = jax.device_get(evaluate(states))
    diverged_at = int(states.diverged_at[2])
    assert 0 <= diverged_at < 20 and list(states.diverged_at[:2]) == [-1, -1]
    losses = np.concatenate([first["loss"][2], second["loss"][2]])
    assert np.isfinite(losses[:diverged_at]).all() and np.isnan(losses[diverged_at:]).all()
    assert train.all_finite(jax.tree.map(lambda a: a[2], states.params))
    assert logged["diverged_at"][2] == diverged_at

    without = batched.stack([trainer.init_state(seed, lr) for seed, lr in enumerate(lrs[:2])])
    chunk_without, _ = batched.compile_batched(trainer)
    without, _ = chunk_without(chunk_without(without)[0])
    for a, b in zip(jax.tree.leaves(without.params), jax.tree.leaves(states.params), strict=True):
        np.testing.assert_array_equal(a, b[:2])


@pytest.mark.parametrize(
    "cell, task, length, hidden, batch, remat",
    [("lstm", "adding", 100, 64, 32, 0), ("rnn", "adding", 200, 128, 64, 0),
     ("lstm", "adding", 400, 32, 16, 20), ("lstm", "copy", 30, 32, 16, 0)],
)
def test_memory_estimate_bounds_what_xla_allocates(cell, task, length, hidden, batch, remat):
    """The up-front memory check's estimate is within [1×, 3×] of the temporary memory XLA's
    compiler reserves for a training chunk and for an evaluation."""
    trainer = tiny_trainer(cell, task, length, hidden=hidden, batch=batch, remat=remat,
                           chunk_steps=5, eval_batch=256, probe_batch=32)
    state = trainer.init_state(0, 1e-3)
    estimate = trainer.memory_bytes()
    for name, fn in (("training", trainer.chunk), ("evaluation", trainer.evaluate)):
        analysis = jax.jit(fn).lower(state).compile().memory_analysis()
        allocated = analysis.temp_size_in_bytes + analysis.argument_size_in_bytes
        assert allocated <= estimate[name] + estimate["parameters"] <= 3 * allocated, name


def test_remat_cuts_the_memory_xla_reserves_for_a_long_sequence():
    """At T=1000 the training chunk with remat blocks of 32 steps reserves under a third of
    the temporary memory of the plain backward pass (only h, ∂L/∂h and the inputs stay O(T))."""
    def reserved(remat):
        trainer = tiny_trainer("lstm", "adding", 1000, hidden=64, batch=16, remat=remat, chunk_steps=2)
        compiled = jax.jit(trainer.chunk).lower(trainer.init_state(0, 1e-3)).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    assert reserved(32) < reserved(0) / 3
