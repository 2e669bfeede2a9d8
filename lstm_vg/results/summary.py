"""summary.json: a run's status and headline numbers, from its logged rows and gradient profiles.

The rules are documented field by field in docs/results-format.md. The profile figures
(`grad_ratio`, `decay_rate`, `steps_in_past`) are plain NumPy, so the analysis side can compute
them again from gradients.npz without the trainer.
"""

from __future__ import annotations

import math

import numpy as np

from lstm_vg.results.format import CRITERION_FIELDS, task_fields


def summarize(task, identity: dict, rows: list[dict], norms: dict[str, list], status: str,
              diverged_at_step, wall_seconds: float, grad_profile: str = "h_norms") -> dict:
    """summary.json's fields. `task`: see `format.task_fields`, plus its `name`, `length` and
    `solved(eval_loss, eval_accuracy)`; `identity`: {"experiment", "run", "cell", "seed",
    "sweep.<key>": value, …}; `grad_profile`: the profile the gradient figures summarise, that
    of the state through which the error signal travels back in time (h, or the cell's
    `recurrent_state`: the LRU's x)."""
    fields = task_fields(task)
    last = rows[-1]
    solved_steps = [r["step"] for r in rows if task.solved(r["eval_loss"], r["eval_accuracy"])]
    profile = norms[grad_profile]
    steps = last["step"]
    return {
        "status": status,
        "experiment": identity["experiment"],
        "run": identity["run"],
        "cell": identity["cell"],
        "task": task.name,
        "length": task.length,
        "seed": identity["seed"],
        **{key: value for key, value in identity.items() if key.startswith("sweep.")},
        "steps": steps,
        "baseline_loss": fields["baseline_loss"],
        "final_train_loss": last["train_loss"],
        "final_eval_loss": last["eval_loss"],
        "final_eval_accuracy": last["eval_accuracy"],
        "best_eval_loss": min((r["eval_loss"] for r in rows), key=lambda v: (math.isnan(v), v)),
        "solved": bool(solved_steps),
        "steps_to_solve": solved_steps[0] if solved_steps else None,
        **{key: fields[key] for key in CRITERION_FIELDS},
        "grad_profile": grad_profile,
        "grad_ratio_init": grad_ratio(profile[0]),
        "grad_ratio_final": grad_ratio(profile[-1]),
        "decay_rate_init": decay_rate(profile[0]),
        "decay_rate_final": decay_rate(profile[-1]),
        "steps_in_past_init": steps_in_past(profile[0]),
        "steps_in_past_final": steps_in_past(profile[-1]),
        "diverged_at_step": diverged_at_step,
        "steps_per_second": steps / wall_seconds if wall_seconds > 0 else None,
        "wall_seconds": wall_seconds,
    }


def grad_ratio(norms: np.ndarray) -> float | None:
    """norms[0] / norms[-1] of one profile; None when undefined (last entry 0, either non-finite)."""
    first, last = float(norms[0]), float(norms[-1])
    if last == 0 or not (math.isfinite(first) and math.isfinite(last)):
        return None
    return first / last


def decay_rate(norms: np.ndarray) -> float | None:
    """Least-squares slope of log10 norms[t] against t, in decades per step.

    Positive when the signal shrinks going back in time (norms grow towards the last step).
    Exact zeros (float32 underflow) and non-finite entries are left out of the fit; None when
    fewer than two points remain.
    """
    norms = np.asarray(norms, np.float64)
    t = np.arange(norms.size)
    keep = np.isfinite(norms) & (norms > 0)
    if keep.sum() < 2:
        return None
    return float(np.polyfit(t[keep], np.log10(norms[keep]), 1)[0])


def steps_in_past(norms: np.ndarray, floor: float = 1e-20) -> int:
    """How many steps still receive an error signal: #t with ‖∂L/∂h_t‖² ≥ floor (a "steps in the
    past" diagnostic with floor 1e-20, after Pascanu, Mikolov & Bengio 2013; docs/reproductions.md,
    Sources, says what was and was not verified of that attribution)."""
    norms = np.asarray(norms, np.float64)
    return int(np.sum(np.isfinite(norms) & (norms**2 >= floor)))
