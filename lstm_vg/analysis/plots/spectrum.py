"""Figure 5, spectrum: the Lyapunov exponents λ₁ ≥ … ≥ λ_k of the state's dynamics over training,
one column per cell (median over seeds; λ₁ thick with a min–max band, the others thin; a zero
line), and, for cells with a recurrent matrix W_h, σ_max(W_h) and ρ(W_h) over training below.

An exponent is the mean growth per step, in natural log, of a direction the step's Jacobians
carry forward (docs/results-format.md, `dynamics.npz`); the error signal flowing back decays by
about −λ₁/ln 10 decades per step, the scale on the right of the top row.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from lstm_vg.analysis.grouping import by_cell
from lstm_vg.analysis.plots.style import (
    REFERENCE_STYLE,
    cell_colour,
    cell_label,
    draw_spread,
    dynamics_runs,
    finite_limits,
    seeds_phrase,
    spans_decades,
    spread,
)
from lstm_vg.results.read import RunResult

# Below this (natural log per step: e^-5 ≈ 0.7% kept per step) a direction is gone within a
# few steps; a killed direction (a dead ReLU unit) sits near ln(float tiny)/T', and drawing it
# would squash λ₁. Such exponents leave through the bottom of the axes.
EXPONENT_FLOOR = -5.0


def stacked(runs: list[RunResult], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps (logs,), (seeds, logs, …) float64) of dynamics[name], cut to the shortest run (a
    running run lags) and to the fewest exponents."""
    arrays = [r.dynamics[name] for r in runs]
    logs = min(a.shape[0] for a in arrays)
    width = min(a.shape[1] for a in arrays) if arrays[0].ndim == 2 else None
    stack = np.stack([np.asarray(a[:logs, :width] if width else a[:logs], np.float64) for a in arrays])
    return runs[0].dynamics["steps"][:logs], stack


def exponents_panel(ax, cell: str, runs: list[RunResult]) -> np.ndarray:
    """λ_k … λ₂ thin and fading, λ₁ on top with its band; returns the medians drawn (logs, k)."""
    steps, stack = stacked(runs, "lyapunov")
    colour, k = cell_colour(cell), stack.shape[2]
    medians = spread(stack)[0]
    for i in range(k - 1, 0, -1):
        ax.plot(steps, medians[:, i], color=colour, linewidth=0.8, alpha=0.25 + 0.45 * (k - i) / k,
                gid=f"{cell}:lyapunov:{i + 1}", label=f"λ₂ … λ_{k}" if i == 1 else None)
    draw_spread(ax, steps, stack[:, :, 0], colour, f"{cell}:lyapunov:1", label="λ₁ (largest)")
    ax.axhline(0.0, gid="zero", label="λ = 0: no decay", **REFERENCE_STYLE)
    decay = ax.secondary_yaxis("right", functions=(lambda x: -x / math.log(10), lambda d: -d * math.log(10)))
    decay.set_ylabel("decay −λ/ln 10 (decades/step)", fontsize=8)
    ax.set_title(f"{cell_label(cell)} · top {k} Lyapunov exponents", color=colour, fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    return medians


def matrix_panel(ax, cell: str, runs: list[RunResult]) -> None:
    """σ_max(W_h) solid and ρ(W_h) dashed over training, with the line at 1."""
    with_matrix = dynamics_runs(runs, "sigma_max", "spectral_radius")
    if not with_matrix:  # the LSTM's, the GRU's Jacobian is not one matrix: nothing was logged
        ax.text(0.5, 0.5, "no recurrent matrix W_h\n(σ_max, ρ not logged)", ha="center", va="center",
                transform=ax.transAxes, color="0.4", fontsize=9)
        ax.set_yticks([])
        return
    stacks = {name: stacked(with_matrix, name) for name in ("sigma_max", "spectral_radius")}
    if spans_decades(*[s for _, s in stacks.values()]):  # a diverging run's W_h
        ax.set_yscale("log")
    for (name, (steps, stack)), (style, label) in zip(stacks.items(), (("-", "σ_max(W_h)"), ("--", "ρ(W_h)")),
                                                      strict=True):
        draw_spread(ax, steps, stack, cell_colour(cell), f"{cell}:{name}", linestyle=style, label=label)
    ax.axhline(1.0, gid="one", label="1: σ_max < 1 ⇒ vanishing; ρ > 1 needed to explode",
               **REFERENCE_STYLE)
    ax.set_ylabel("singular value / spectral radius")
    ax.legend(fontsize=8)


def exponent_limits(medians: list[np.ndarray]) -> tuple[float, float]:
    """y-limits holding every λ₁ and the zero line; the other exponents down to EXPONENT_FLOOR."""
    largest = np.concatenate([m[:, 0] for m in medians])
    largest = largest[np.isfinite(largest)]
    floor = min(EXPONENT_FLOOR, largest.min()) if largest.size else EXPONENT_FLOOR
    return finite_limits(*medians, np.zeros(1), floor=floor)


def spectrum_figure(runs: list[RunResult], title: str) -> Figure:
    """Top row: Lyapunov exponents against the training step per cell (one y scale for all
    cells); bottom row, when any cell logged W_h's spectrum: σ_max and ρ. Cells with neither are
    left out; the caller draws this only when some run has `lyapunov` or `sigma_max`."""
    with_any = {id(r) for name in ("lyapunov", "sigma_max") for r in dynamics_runs(runs, name)}
    cells = by_cell([r for r in runs if id(r) in with_any])
    matrix = any(dynamics_runs(runs, "sigma_max", "spectral_radius"))
    figure = Figure(figsize=(max(4.6 * len(cells) + 0.8, 7.0), 7.0 if matrix else 4.0), layout="constrained")
    axes = figure.subplots(2 if matrix else 1, len(cells), sharex=True, squeeze=False)
    drawn = []
    for column, (cell, group) in enumerate(cells.items()):
        ax = axes[0, column]
        with_exponents = dynamics_runs(group, "lyapunov")
        if with_exponents:
            drawn.append(exponents_panel(ax, cell, with_exponents))
        else:
            ax.text(0.5, 0.5, "no Lyapunov exponents logged", ha="center", va="center",
                    transform=ax.transAxes, color="0.4", fontsize=9)
        ax.grid(True, alpha=0.3)
        if matrix:
            matrix_panel(axes[1, column], cell, group)
            axes[1, column].grid(True, alpha=0.3)
        axes[-1, column].set_xlabel("training step")
    for ax in axes[0]:
        if drawn:  # one scale for all cells, so their exponents compare at a glance
            ax.set_ylim(*exponent_limits(drawn))
    axes[0, 0].set_ylabel("exponent (natural log per step)")
    figure.suptitle(f"{title}: Lyapunov spectrum over training ({seeds_phrase(runs)})")
    return figure
