"""Claims: parsing one-line statements and checking them against run summaries."""

from pathlib import Path

import pytest

from lstm_vg.analysis import claims
from lstm_vg.errors import UserError
from lstm_vg.results.read import RunResult


def summary(cell, seed, length=100, **fields):
    base = {"cell": cell, "seed": seed, "length": length, "task": "adding", "status": "done"}
    return base | fields


def run(summary: dict, config: dict) -> RunResult:
    """A finished run as read from its folder: summary.json and config.yaml."""
    return RunResult(Path(f"{summary['cell']},seed={summary['seed']}"), summary, config, None, None, {})


RUNS = [run(*r) for r in [
    (summary("lstm", 0, solved=True, steps_to_solve=600, final_eval_loss=0.001, ratio=0.2),
     {"model": {"forget_bias": 1.0}}),
    (summary("lstm", 1, solved=True, steps_to_solve=800, final_eval_loss=0.003, ratio=0.1),
     {"model": {"forget_bias": 1.0}}),
    (summary("lstm", 2, solved=False, steps_to_solve=None, final_eval_loss=0.2, ratio=0.3),
     {"model": {"forget_bias": 0.0}}),
    (summary("rnn", 0, solved=False, steps_to_solve=None, final_eval_loss=0.17, ratio=0.0), {}),
    (summary("rnn", 1, solved=False, steps_to_solve=None, final_eval_loss=0.18, ratio=1e-20), {}),
]]


def value(text):
    verdict = claims.check(claims.parse(text, "test"), RUNS)
    assert verdict.problem is None, verdict.problem
    return verdict.left, verdict.holds


@pytest.mark.parametrize(
    "text, left, holds",
    [
        ("count(solved | cell=lstm) >= 2", 2, True),
        ("fraction(solved | cell=lstm) >= 0.67", 2 / 3, False),
        ("count(solved | cell=rnn) == 0", 0, True),
        ("mean(final_eval_loss | cell=rnn) < 0.175", 0.175, False),
        ("median(final_eval_loss | cell=lstm) <= 0.003", 0.003, True),
        ("min(final_eval_loss | cell=rnn, seed=1) > 0.179", 0.18, True),
        ("max(steps_to_solve | cell=lstm, model.forget_bias=1.0) <= 800", 800, True),
        ("max(steps_to_solve | cell=lstm) <= 3000", float("inf"), False),  # null: never solved
        ("median(ratio | cell=rnn) <= 1e-6 * median(ratio | cell=lstm)", 5e-21, True),
        ("count(solved) >= 3", 2, False),
        ("2 * min(final_eval_loss | length=100) < 0.003", 0.002, True),
    ],
)
def test_claims_aggregate_the_matching_runs(text, left, holds):
    measured, verdict = value(text)
    assert measured == pytest.approx(left) and verdict is holds


def test_a_filter_that_matches_no_run_fails_with_a_reason():
    verdict = claims.check(claims.parse("count(solved | cell=gru) == 0", "x"), RUNS)
    assert not verdict.holds and "no finished run matches cell=gru" in verdict.problem


def test_an_unknown_field_fails_with_a_reason():
    verdict = claims.check(claims.parse("max(final_loss | cell=lstm) < 1", "x"), RUNS)
    assert not verdict.holds and "final_loss" in verdict.problem


@pytest.mark.parametrize(
    "text, expected",
    [
        ("count(solved | cell=lstm)", "expected exactly one of"),
        ("count(solved) >= 1 >= 0", "expected exactly one of"),
        ("total(solved) >= 1", "'total' is not an aggregate"),
        ("count(solved | cell) >= 1", "filter 'cell': expected key=value"),
        ("count solved >= 1", "expected a number or aggregate"),
        (3, "expected a claim as one line of text"),
    ],
)
def test_malformed_claims_are_user_errors_naming_where(text, expected):
    with pytest.raises(UserError) as error:
        claims.parse(text, "exp.yaml: claims[0]")
    assert str(error.value).startswith("exp.yaml: claims[0]: ") and expected in str(error.value)
