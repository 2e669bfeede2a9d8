"""Figure 1, gradient decay: ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) against t, one column per cell, at
step 0 and at the last logged step; median over seeds, band = min–max; exact zeros marked on the
bottom axis. Where the runs logged dynamics.npz, the theory over it: the slope the largest
Lyapunov exponent predicts, norms[T'−1]·e^{λ₁(T'−1−t)}, and Pascanu et al.'s bound
norms[T'−1]·σ_max^{T'−1−t} (γ = 1; cells with a recurrent matrix only), both anchored at the
profile's last point (docs/plots.md)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from lstm_vg.analysis.grouping import by_cell
from lstm_vg.analysis.numbers import median
from lstm_vg.analysis.plots.style import (
    NORM_STYLES,
    THEORY_LABELS,
    THEORY_STYLES,
    ZERO_LABELS,
    cell_colour,
    cell_label,
    draw_spread,
    dynamics_runs,
    log_limits,
    mark_bottom,
    positive_or_nan,
    seeds_phrase,
    spread,
)
from lstm_vg.results.read import RunResult


def annotate_decay(ax, runs: list[RunResult], row: int) -> None:
    """The stored headline numbers of the profile at log `row`: median gradient ratio and decay rate."""
    when = "init" if row == 0 else "final"
    done = [r.summary for r in runs if r.summary is not None]
    ratio = median([s.get(f"grad_ratio_{when}") for s in done])
    rate = median([s.get(f"decay_rate_{when}") for s in done])
    if ratio is None and rate is None:
        return
    state = runs[0].grad_profile.removesuffix("_norms")
    lines = [] if ratio is None else [f"‖∂L/∂{state}_1‖/‖∂L/∂{state}_T‖ = {ratio:.2g}"]
    lines += [] if rate is None else [f"decay rate {rate:.3g} decades/step"]
    predicted = median([s.get(f"predicted_decay_rate_{when}") for s in done])
    explained = median([s.get(f"decay_explained_{when}") for s in done])
    if predicted is not None:  # summaries without dynamics have none: the text is as before
        share = "" if explained is None else f", {explained:.0%} of it"
        lines.append(f"λ₁ predicts {predicted:.3g} decades/step{share}")
    ax.text(0.98, 0.04, "\n".join(lines), transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.85})


def profile_stack(runs: list[RunResult], quantity: str, row: int) -> np.ndarray | None:
    """(seeds, T') profiles of `quantity` at log `row` (0 or -1) of the runs that have it."""
    profiles = [r.norms[quantity][row] for r in runs if r.norms and quantity in r.norms]
    return np.stack(profiles).astype(np.float64) if profiles else None


def dynamics_median(runs: list[RunResult], name: str, row: int) -> float | None:
    """Median over seeds of dynamics[name] (lyapunov: λ₁, its first column) at the training step
    of profile log `row`; None when no run logged it there (matched by step: rows may lag)."""
    values = []
    for run in dynamics_runs([r for r in runs if r.norms is not None], name):
        rows = np.flatnonzero(run.dynamics["steps"] == run.norms["steps"][row])
        if rows.size:
            values.append(np.ravel(run.dynamics[name][rows[0]])[0])
    return median(values)


def draw_theory(ax, cell: str, runs: list[RunResult], stack: np.ndarray, row: int) -> None:
    """Lines anchored at the median profile's last point (t = T'): λ₁'s slope and σ_max's bound.

    The axes keep the measured profiles' y-limits (set after drawing) and clip these lines to
    them, so a growing bound leaves through the top instead of stretching the scale."""
    profile = spread(stack)[0]
    anchor = profile[-1]
    if not (np.isfinite(anchor) and anchor > 0):  # an underflowed or diverged end: no anchor
        return
    t = np.arange(1, profile.size + 1)
    back = profile.size - t  # T'−1−t in 0-based steps: how far back from the last step
    when = "init" if row == 0 else "final"
    rates = {"lyapunov": dynamics_median(runs, "lyapunov", row)}
    sigma = dynamics_median(runs, "sigma_max", row)
    if sigma is not None and sigma > 0:
        rates["bound"] = np.log(sigma)
    for kind, rate in rates.items():
        if rate is None:
            continue
        with np.errstate(over="ignore", under="ignore"):
            line = positive_or_nan(anchor * np.exp(rate * back))
        value = rate if kind == "lyapunov" else sigma
        ax.plot(t, line, color=cell_colour(cell), gid=f"{cell}:{kind}:{when}", clip_on=True,
                label=THEORY_LABELS[kind].format(value), **THEORY_STYLES[kind])


def when_label(runs: list[RunResult], row: int) -> str:
    """"step 0" or "step 1500" (or "steps 40–60, running") for log `row` of the runs."""
    steps = sorted({int(r.norms["steps"][row]) for r in runs})
    words = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}–{steps[-1]}"
    if row == 0:
        return f"at initialisation ({words})"
    running = any(r.status == "running" for r in runs)
    return f"{'latest logged' if running else 'end of training'} ({words}{', running' if running else ''})"


def gradient_decay_figure(runs: list[RunResult], title: str) -> Figure:
    """Rows: step 0 and the last logged step; columns: cells; log y shared by all panels.

    Each panel: median over seeds of h_norms[row] (solid), c_norms[row] (dotted) and x_norms[row]
    (dashed) against t = 1 … T', a min–max band, and ▼ on the bottom axis where any seed's norm is
    exactly 0. Thin, over the profile of the cell's `grad_profile`, where dynamics.npz has them:
    the Lyapunov λ₁ slope (dash-dot) and Pascanu's bound σ_max^{T'−t} (dotted). A cell whose
    error signal travels back through another state than h (its `grad_profile`, e.g. the LRU's
    x) is drawn without h, a readout that only the read steps feed.
    """
    cells = by_cell([r for r in runs if r.norms is not None])
    stacks = {(cell, q, row): profile_stack(group, q, row)
              for cell, group in cells.items() for q in NORM_STYLES for row in (0, -1)
              if q != "h_norms" or group[0].grad_profile == "h_norms"}
    bottom, top = log_limits(*[s for s in stacks.values() if s is not None])
    figure = Figure(figsize=(4.6 * len(cells) + 0.6, 6.6), layout="constrained")
    axes = figure.subplots(2, len(cells), sharex=True, sharey=True, squeeze=False)
    for column, (cell, group) in enumerate(cells.items()):
        colour = cell_colour(cell)
        for row_index, row in enumerate((0, -1)):
            ax = axes[row_index, column]
            ax.set_yscale("log")
            for quantity, (style, name) in NORM_STYLES.items():
                stack = stacks.get((cell, quantity, row))
                if stack is None:
                    continue
                gid = f"{cell}:{quantity}:{'init' if row == 0 else 'final'}"
                t = np.arange(1, stack.shape[1] + 1)
                draw_spread(ax, t, stack, colour, gid, bottom, style, name)
                zeros = t[(stack == 0).any(axis=0)]
                mark_bottom(ax, zeros, colour, f"{gid}:zeros", quantity == "h_norms", ZERO_LABELS[quantity])
            profile = stacks.get((cell, group[0].grad_profile, row))
            if profile is not None:
                draw_theory(ax, cell, group, profile, row)
            annotate_decay(ax, group, row)
            ax.set_title(f"{cell_label(cell)} · {when_label(group, row)}", color=colour, fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize=8, loc="upper left")
        axes[-1, column].set_xlabel("time step t (1 = first input)")
    for ax in axes[:, 0]:
        ax.set_ylabel("gradient norm (mean over probe batch)")
    axes[0, 0].set_ylim(bottom, top)
    figure.suptitle(f"{title}: error signal reaching step t ({seeds_phrase(runs)})")
    return figure
