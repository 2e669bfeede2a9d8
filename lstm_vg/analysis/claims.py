"""Claims: one-line, checkable statements over the finished runs of a results folder.

A claim compares two sides with <, <=, > or >=. A side is a number or an aggregate of one
summary.json field over the runs that match a filter, optionally scaled by a number::

    fraction(solved | cell=lstm, length=100) >= 0.66
    count(solved | cell=rnn) == 0
    min(best_eval_loss | cell=rnn, length=200) > 0.05
    median(grad_ratio_final | cell=rnn) <= 1e-6 * median(grad_ratio_final | cell=lstm)
    max(steps_to_solve | cell=lstm, length=100) <= 3000

Aggregates: count (runs whose field is true / non-null and non-zero), fraction (count / runs),
mean, median, min, max (over the field's values; null counts as +inf for `steps_to_solve` —
never solved is later than any step — and as missing otherwise). Filters are `key=value` pairs
joined by commas; a key is a summary field (cell, task, length, seed, experiment, …) or a
dotted config key of the run (model.forget_bias, train.lr, …); values are read as YAML
(100 → int, 1.0 → float, true → bool). A claim whose filter matches no run fails.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

import numpy as np
import yaml

from lstm_vg.errors import UserError
from lstm_vg.results.read import RunResult

AGGREGATES = ("count", "fraction", "mean", "median", "min", "max")
OPERATORS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "<": operator.lt, ">": operator.gt}
NULL_IS_INFINITE = ("steps_to_solve",)

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
SIDE = re.compile(
    rf"^\s*(?:(?P<scale>{NUMBER})\s*\*\s*)?(?P<agg>[a-z]+)\s*\(\s*(?P<field>[\w.]+)\s*"
    rf"(?:\|\s*(?P<filters>[^)]*))?\)\s*$"
)
SPLIT = re.compile(r"\s*(<=|>=|==|<|>)\s*")


@dataclass(frozen=True)
class Side:
    """A number (aggregate None) or scale · aggregate(field | filters)."""

    scale: float
    aggregate: str | None = None
    field: str | None = None
    filters: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class Claim:
    text: str
    left: Side
    operator: str
    right: Side


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    left: float | None
    right: float | None
    holds: bool
    problem: str | None = None  # why it could not be evaluated

    @property
    def measured(self) -> str:
        """The two sides as measured ("0.2011 > 0.05"), or why they could not be."""
        left, right = ("—" if side is None else f"{side:.4g}" for side in (self.left, self.right))
        return self.problem or f"{left} {self.claim.operator} {right}"


def parse_filters(text: str, where: str) -> tuple[tuple[str, object], ...]:
    filters = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{where}: filter {part!r}: expected key=value")
        filters.append((key.strip(), yaml.safe_load(value.strip())))
    return tuple(filters)


def parse_side(text: str, where: str) -> Side:
    if re.fullmatch(rf"\s*{NUMBER}\s*", text):
        return Side(scale=float(text))
    match = SIDE.match(text)
    if not match:
        raise UserError(f"{where}: {text.strip()!r}: expected a number or "
                        f"aggregate(field | key=value, …), e.g. median(final_eval_loss | cell=lstm)")
    if match["agg"] not in AGGREGATES:
        raise UserError(f"{where}: {match['agg']!r} is not an aggregate; allowed: {', '.join(AGGREGATES)}")
    return Side(float(match["scale"] or 1), match["agg"], match["field"],
                parse_filters(match["filters"] or "", where))


def parse(text, where: str) -> Claim:
    """One claim from its one-line text; `where` names it in errors ("x.yaml: claims[2]")."""
    if not isinstance(text, str):
        raise UserError(f"{where}: expected a claim as one line of text, got {type(text).__name__}")
    parts = SPLIT.split(text)
    if len(parts) != 3:
        raise UserError(f"{where}: {text!r}: expected exactly one of {', '.join(OPERATORS)} "
                        f"between two sides")
    left, op, right = parts
    return Claim(text.strip(), parse_side(left, where), op, parse_side(right, where))


def matches(value, wanted) -> bool:
    if isinstance(wanted, (int, float)) and isinstance(value, (int, float)):
        return math.isclose(value, wanted, rel_tol=1e-9)
    return value == wanted


def evaluate_side(side: Side, runs: list[RunResult]) -> tuple[float | None, str | None]:
    """(value, problem) of one side over the runs (`RunResult.value` reads their fields)."""
    if side.aggregate is None:
        return side.scale, None
    chosen = [run for run in runs if all(matches(run.value(k), v) for k, v in side.filters)]
    described = ", ".join(f"{k}={v}" for k, v in side.filters) or "all runs"
    if not chosen:
        return None, f"no finished run matches {described}"
    values = [run.value(side.field) for run in chosen]
    if all(v is None for v in values) and side.field not in NULL_IS_INFINITE:
        if not any(side.field in run.summary for run in chosen):
            return None, f"no run has the field {side.field!r}"
    if side.aggregate in ("count", "fraction"):
        hits = sum(1 for v in values if v not in (None, False, 0))
        value = hits if side.aggregate == "count" else hits / len(values)
        return side.scale * value, None
    if side.field in NULL_IS_INFINITE:
        values = [math.inf if v is None else v for v in values]
    numbers = np.array([v for v in values if v is not None], np.float64)
    if numbers.size == 0:
        return None, f"{side.field} is null in every run matching {described}"
    value = {"mean": np.mean, "median": np.median, "min": np.min, "max": np.max}[side.aggregate](numbers)
    return side.scale * float(value), None


def check(claim: Claim, runs: list[RunResult]) -> Verdict:
    """Evaluate a claim over finished runs (runs with a summary.json)."""
    left, problem_left = evaluate_side(claim.left, runs)
    right, problem_right = evaluate_side(claim.right, runs)
    problem = problem_left or problem_right
    if problem is not None:
        return Verdict(claim, left, right, False, problem)
    return Verdict(claim, left, right, bool(OPERATORS[claim.operator](left, right)))
