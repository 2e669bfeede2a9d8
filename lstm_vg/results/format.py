"""The names of a results folder's files and fields (the contract is docs/results-format.md)::

    <out>/<experiment>/<run>/
        config.yaml     resolved config of this run (loadable by `lstm-vg run`)
        meta.json       versions, device, seed, batch, start/end time, the task's baseline and
                        solved criterion
        metrics.csv     one row per logged step (METRIC_FIELDS)
        gradients.npz   steps (logs,), h_norms (logs, T'), c_norms (logs, T') for the LSTM, and
                        each state's reach (h_reach, …)
        dynamics.npz    steps (logs,) and the diagnostics of `log.diagnostics` (Lyapunov
                        exponents, σ_max and ρ of W_h, input connectivity, keep gates)
        params.npz      final params, flattened keys "cell/w_x", "readout/b", "cell/layers/0/nu_log", ...
        summary.json    status and the headline numbers (`results.summary`)
        checkpoint.npz  an unfinished run's training state (`training.checkpoint`)
"""

from __future__ import annotations

import operator
from datetime import datetime, timezone

CONFIG, META, METRICS, NORMS, DYNAMICS, PARAMS, SUMMARY, CHECKPOINT = (
    "config.yaml", "meta.json", "metrics.csv", "gradients.npz", "dynamics.npz", "params.npz",
    "summary.json", "checkpoint.npz",
)
# dynamics.npz arrays written once, not per log (the probe inputs do not change)
DYNAMICS_CONSTANTS = ("connectivity_inputs",)


def in_gradients(name: str) -> bool:
    """Whether a logged profile goes to gradients.npz (a state's norms or reach), not dynamics.npz."""
    return name.endswith(("_norms", "_reach"))
RUN_MARKERS = (SUMMARY, METRICS)  # a folder holding either is a run folder
METRIC_FIELDS = ("step", "train_loss", "eval_loss", "eval_accuracy", "grad_norm", "wall_seconds")
# A run without summary.json is "running"; summary.json says how it ended.
STATUSES = ("running", "done", "diverged", "interrupted")
ENDED = ("done", "diverged")  # trained to the end: reused by --resume, counted by claims

# The solved criterion, as summary.json and meta.json store it: solved when
# RELATIONS[solved_relation](row[solved_metric], solved_threshold).
RELATIONS = {"<=": operator.le, ">=": operator.ge}
CRITERION_FIELDS = ("solved_metric", "solved_relation", "solved_threshold")

# Results written by lstm-vg before the criterion was stored: the criteria of that version's
# tasks, by (task, variant) → (metric, relation, default threshold; task.threshold overrides it).
CRITERIA_BEFORE_STORED = {
    ("adding", "standard"): ("eval_loss", "<=", 0.01),
    ("adding", "hochreiter1997"): ("eval_accuracy", ">=", 0.99),
    ("copy", "standard"): ("eval_accuracy", ">=", 0.99),
}


def task_fields(task) -> dict:
    """What meta.json and summary.json record of a task (any object with a `baseline_loss`,
    `solved_metric`, `solved_relation` (operator.le or .ge) and `threshold`)."""
    symbol = {function: text for text, function in RELATIONS.items()}[task.solved_relation]
    return {"baseline_loss": task.baseline_loss, "solved_metric": task.solved_metric,
            "solved_relation": symbol, "solved_threshold": float(task.threshold)}


def flatten(tree: dict, sep: str = "/", prefix: str = "", lists: bool = False) -> dict:
    """{"cell": {"w_x": a}} → {"cell/w_x": a} (or "cell.w_x" with sep="."); with `lists`, a list
    or tuple is a node too, its entries numbered: {"layers": [{"nu": a}]} → {"layers/0/nu": a}."""
    flat = {}
    for key, value in tree.items() if isinstance(tree, dict) else enumerate(tree):
        name = f"{prefix}{key}"
        node = isinstance(value, dict) or (lists and isinstance(value, (list, tuple)))
        flat |= flatten(value, sep, f"{name}{sep}", lists) if node else {name: value}
    return flat


def now() -> str:
    """The time stamps of meta.json: ISO 8601, UTC, whole seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
