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
        **past_fields(norms, grad_profile),
        **dynamics_fields(norms, profile),
        **marker_fields(norms, getattr(task, "marker_channel", None)),
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
    """The rule of results written before the reach was logged: #t with ‖∂L/∂h_t‖² ≥ floor in
    the batch-mean profile."""
    norms = np.asarray(norms, np.float64)
    return int(np.sum(np.isfinite(norms) & (norms**2 >= floor)))


def steps_reached(reach: np.ndarray) -> float:
    """"Steps in the past" as Pascanu, Mikolov & Bengio's code prints it (`pascanur/trainingRNNs`,
    RNN.py, `n_elems.mean()`): the fraction of the steps, averaged over the examples, at which
    that example's ‖∂C/∂h_t‖² ≥ 1e-20, i.e. the mean over t of reach[t]; in [0, 1]."""
    return float(np.mean(np.asarray(reach, np.float64)))


def past_fields(norms: dict, grad_profile: str) -> dict:
    """steps_in_past_init/final: from the profile's reach where it was logged, else (older
    results) from the batch-mean profile."""
    reach = norms.get(grad_profile.removesuffix("_norms") + "_reach")
    if reach is not None:
        count, rows = steps_reached, reach
    else:
        count, rows = steps_in_past, norms[grad_profile]
    return {"steps_in_past_init": count(rows[0]), "steps_in_past_final": count(rows[-1])}


def finite(value) -> float | None:
    """A float for JSON: None for NaN and ±inf."""
    value = float(value)
    return value if math.isfinite(value) else None


def predicted_decay_rate(lyapunov_max: float | None) -> float | None:
    """The decay in decades per step that the largest Lyapunov exponent λ₁ (natural log per step)
    predicts for the error signal going back in time: −λ₁ / ln 10 (`lstm_vg.core.dynamics`)."""
    return None if lyapunov_max is None else -lyapunov_max / math.log(10)


def decay_explained(predicted: float | None, measured: float | None) -> float | None:
    """The fraction of the measured decay rate that the exponent predicts: predicted / measured
    (1: all of it; None when either is missing or the profile is flat)."""
    if predicted is None or measured is None or measured == 0:
        return None
    return predicted / measured


def marker_share(connectivity: np.ndarray, inputs: np.ndarray, channel: int) -> float | None:
    """The share of the input connectivity on the marked steps: connectivity (E, T'), inputs
    (E, T', I) → the mean over the E sequences of Σ_{t marked} c_t / Σ_t c_t, where a step is
    marked when inputs[..., channel] = 1 (adding's two operands); None when it is undefined."""
    marked = np.asarray(inputs)[..., channel] == 1
    connectivity = np.asarray(connectivity, np.float64)
    totals = connectivity.sum(axis=-1)
    keep = np.isfinite(totals) & (totals > 0)
    if not keep.any():
        return None
    return float(np.mean((connectivity * marked).sum(axis=-1)[keep] / totals[keep]))


def marker_fields(norms: dict, channel: int | None) -> dict:
    """connectivity_at_markers_init/final: `marker_share` of the stored example sequences at the
    first and last log, for a task with a marker channel (adding: by chance 2/T); else None."""
    examples, inputs = norms.get("connectivity_examples"), norms.get("connectivity_inputs")
    if channel is None or examples is None or inputs is None:
        return {"connectivity_at_markers_init": None, "connectivity_at_markers_final": None}
    inputs = inputs[-1]  # a constant: the run's log keeps it as a one-entry list
    return {"connectivity_at_markers_init": marker_share(examples[0], inputs, channel),
            "connectivity_at_markers_final": marker_share(examples[-1], inputs, channel)}


def dynamics_fields(norms: dict, profile) -> dict:
    """The summary's dynamics fields (None where the diagnostic was not logged): the largest
    Lyapunov exponent at the first and last log, its predicted decay rate and the fraction of the
    measured one it explains, σ_max and ρ of W_h, the median keep-gate timescale."""
    out = {}
    for when, i in (("init", 0), ("final", -1)):
        lyapunov = norms.get("lyapunov")
        top = finite(lyapunov[i][0]) if lyapunov is not None else None
        predicted = predicted_decay_rate(top)
        out |= {f"lyapunov_max_{when}": top,
                f"predicted_decay_rate_{when}": predicted,
                f"decay_explained_{when}": decay_explained(predicted, decay_rate(profile[i]))}
    for name in ("sigma_max", "spectral_radius"):
        values = norms.get(name)
        out |= {f"{name}_{when}": None if values is None else finite(values[i])
                for when, i in (("init", 0), ("final", -1))}
    timescale = norms.get("timescale")
    out |= {f"timescale_median_{when}": None if timescale is None else finite(np.median(timescale[i]))
            for when, i in (("init", 0), ("final", -1))}
    return out
