"""Figure 7, timescales: the distribution over units of the keep gate's timescale τ = 1/(1 − f̄)
(in steps) at initialisation and at the end of training, one panel per gated cell, units of all
seeds pooled, on log-spaced bins, against the chrono prior of Tallec & Ollivier (2018),
"Can recurrent neural networks warp time?": τ ~ U(2, T_max).

Both are drawn as densities per decade of τ (so equal areas on the log axis hold equal shares of
units): the prior's is p(log10 τ) = τ·ln 10/(T_max − 2) on [2, T_max].
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from lstm_vg.analysis.grouping import by_cell
from lstm_vg.analysis.plots.style import REFERENCE_STYLE, cell_colour, cell_label, dynamics_runs
from lstm_vg.results.read import RunResult

BINS_PER_DECADE = 8


def chrono_max(run: RunResult) -> tuple[int, str]:
    """T_max of the prior and where it comes from: `model.chrono` when the run used chrono
    initialisation, else the sequence length T' (the profile's width; the task's T without one)."""
    chrono = run.value("model.chrono")
    if chrono:
        return int(chrono), "model.chrono"
    for arrays, name in ((run.norms, "h_norms"), (run.dynamics, "connectivity")):
        if arrays is not None and name in arrays and arrays[name].ndim == 2:
            return int(arrays[name].shape[1]), "sequence length T'"
    return int(run.length), "task length T"


def pooled(runs: list[RunResult], row: int) -> np.ndarray:
    """τ of every unit of every run at log `row` (0 or -1), inf included, NaN (diverged) left out."""
    values = np.concatenate([np.ravel(np.asarray(r.dynamics["timescale"][row], np.float64)) for r in runs])
    return values[~np.isnan(values)]


def density_per_decade(values: np.ndarray, log_edges: np.ndarray) -> np.ndarray:
    """Histogram of log10 τ over the finite values, normalised by all units (an infinite τ counts
    in the total, not in a bin) and by the bin width in decades."""
    counts, _ = np.histogram(np.log10(values[np.isfinite(values)]), bins=log_edges)
    return counts / max(values.size, 1) / np.diff(log_edges)


def prior_line(t_max: int) -> tuple[np.ndarray, np.ndarray]:
    """(τ, p(log10 τ)) of U(2, T_max), zero outside [2, T_max] (drawn as vertical edges)."""
    tau = np.geomspace(2, t_max, 200)
    density = tau * math.log(10) / (t_max - 2)
    return np.concatenate([[2], tau, [t_max]]), np.concatenate([[0], density, [0]])


def timescale_panel(ax, cell: str, runs: list[RunResult]) -> None:
    """Init (filled) and final (outline) histograms with the prior's density dashed."""
    colour = cell_colour(cell)
    t_max, source = chrono_max(runs[0])
    init, final = pooled(runs, 0), pooled(runs, -1)
    finite = np.concatenate([init[np.isfinite(init)], final[np.isfinite(final)], [2.0, t_max]])
    low = math.floor(np.log10(max(finite.min(), 1.0)) * BINS_PER_DECADE) / BINS_PER_DECADE
    high = math.ceil(np.log10(finite.max()) * BINS_PER_DECADE + 1e-9) / BINS_PER_DECADE
    log_edges = np.arange(low, high + 0.5 / BINS_PER_DECADE, 1 / BINS_PER_DECADE)
    steps = {0: int(runs[0].dynamics["steps"][0]), -1: int(runs[0].dynamics["steps"][-1])}
    ax.set_xscale("log")
    ax.stairs(density_per_decade(init, log_edges), 10 ** log_edges, fill=True, color=colour, alpha=0.25,
              gid=f"{cell}:timescale:init", label=f"step {steps[0]} (init)")
    ax.stairs(density_per_decade(final, log_edges), 10 ** log_edges, color=colour, linewidth=1.8,
              gid=f"{cell}:timescale:final", label=f"step {steps[-1]}")
    if t_max > 2:  # U(2, 2) has no density
        ax.plot(*prior_line(t_max), linestyle="--", gid=f"{cell}:chrono_prior",
                label=f"chrono prior τ ~ U(2, {t_max}) (T_max = {source})", **REFERENCE_STYLE)
    infinite = int(np.isinf(final).sum())
    if infinite:  # f̄ = 1 exactly: no bin on a log axis holds them
        ax.text(0.98, 0.96, f"{infinite} unit(s) with τ = ∞ at the end", transform=ax.transAxes,
                ha="right", va="top", fontsize=8)
    ax.set_title(f"{cell_label(cell)} · {init.size} units ({len(runs)} seeds pooled)", color=colour,
                 fontsize=10)
    ax.set_xlabel("timescale τ = 1/(1 − mean keep gate) (steps)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")


def timescale_figure(runs: list[RunResult], title: str) -> Figure:
    """One panel per cell that logged `timescale` (gated cells: LSTM, GRU); the caller draws this
    only when some run has it."""
    cells = by_cell(dynamics_runs(runs, "timescale"))
    figure = Figure(figsize=(max(4.8 * len(cells) + 0.4, 7.0), 4.0), layout="constrained")
    axes = figure.subplots(1, len(cells), squeeze=False)[0]
    for ax, (cell, group) in zip(axes, cells.items(), strict=True):
        timescale_panel(ax, cell, group)
    axes[0].set_ylabel("density per decade of τ")
    figure.suptitle(f"{title}: keep-gate timescales τ against the chrono prior")
    return figure
