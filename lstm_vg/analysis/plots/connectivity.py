"""Figure 6, input connectivity (Distill 2019, "Visualizing memorization in RNNs"): how strongly
the prediction ŷ depends on each input x_t, ‖∂ŷ/∂x_t‖, for one representative run per cell (the
lowest seed). Top: log10 of the probe batch's mean over (training step × t); bottom: the first
stored probe sequence's connectivity at the first and the last logged step, with its marked
inputs (adding, multiplication: the two markers; temporal order: its relevant symbols; other
tasks: the steps whose input is not the usual one).
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from lstm_vg.analysis.grouping import by_cell
from lstm_vg.analysis.plots.heatmap import edges, log10_or_below
from lstm_vg.analysis.plots.style import (
    REFERENCE_STYLE,
    cell_colour,
    cell_label,
    dynamics_runs,
    first_seed,
    positive_or_nan,
)
from lstm_vg.results.read import RunResult


def marked_steps(task: str, inputs: np.ndarray) -> tuple[np.ndarray, str]:
    """t (1-based) of the inputs that matter in one sequence `inputs` (T', I), and their name.

    Adding and multiplication (either variant): channel 1 is the marker, 1 at the two operands.
    Temporal order (any variant): channels 0 and 1 are its relevant symbols (A/B, X/Y). Another
    one-hot task (copy): the steps whose symbol is not the most common one (the blank): the data
    and the delimiter. Anything else: none."""
    inputs = np.asarray(inputs, np.float64)
    if task in ("adding", "multiplication") and inputs.shape[1] >= 2:
        return np.flatnonzero(inputs[:, 1] == 1) + 1, "marked input (marker = 1)"
    if task == "temporal_order" and inputs.shape[1] >= 2:
        return np.flatnonzero(inputs[:, :2].sum(axis=1) == 1) + 1, "relevant symbol (A/B, X/Y)"
    if inputs.shape[1] > 2:
        symbols = np.argmax(inputs, axis=1)
        usual = np.bincount(symbols).argmax()
        return np.flatnonzero(symbols != usual) + 1, "input ≠ blank (data, delimiter)"
    return np.zeros(0, np.int64), ""


def heatmap_panel(ax, cell: str, run: RunResult, low: float, high: float):
    """log10 mean connectivity over (training step × t); zeros below the scale (white)."""
    values = np.asarray(run.dynamics["connectivity"], np.float64)
    steps = run.dynamics["steps"][: values.shape[0]]
    t = np.arange(1, values.shape[1] + 1)
    cmap = colormaps["magma"].with_extremes(under="white", bad="0.6")
    mesh = ax.pcolormesh(edges(t), edges(steps), log10_or_below(values, low - 1), cmap=cmap,
                         vmin=low, vmax=high, gid=f"{cell}:connectivity")
    ax.set_title(f"{cell_label(cell)} · seed {run.seed}: mean over probe batch", color=cell_colour(cell),
                 fontsize=10)
    return mesh


def example_panel(ax, cell: str, run: RunResult) -> None:
    """Sequence 0's ‖∂ŷ/∂x_t‖ at the first logged step (thin) and the last (thick), log y, with
    its marked inputs as vertical lines."""
    examples = np.asarray(run.dynamics["connectivity_examples"], np.float64)
    steps, colour = run.dynamics["steps"], cell_colour(cell)
    t = np.arange(1, examples.shape[2] + 1)
    ax.set_yscale("log")
    ax.plot(t, positive_or_nan(examples[0, 0]), color=colour, linewidth=1.0, alpha=0.55,
            linestyle="--", gid=f"{cell}:example:init", label=f"step {int(steps[0])}")
    ax.plot(t, positive_or_nan(examples[-1, 0]), color=colour, linewidth=1.8,
            gid=f"{cell}:example:final", label=f"step {int(steps[examples.shape[0] - 1])}")
    inputs = run.dynamics.get("connectivity_inputs")
    if inputs is not None and inputs.shape[0] and inputs.shape[1] == t.size:
        marked, name = marked_steps(run.task, inputs[0])
        for index, position in enumerate(marked):  # one legend entry for all of them
            ax.axvline(position, gid=f"{cell}:marker", label=name if index == 0 else None,
                       linestyle=":", **REFERENCE_STYLE)
    ax.set_title(f"probe sequence 0 (seed {run.seed})", fontsize=9)
    ax.set_xlabel("time step t (1 = first input)")
    ax.set_ylabel("‖∂ŷ/∂x_t‖")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def connectivity_figure(runs: list[RunResult], title: str) -> Figure:
    """One column per cell that logged `connectivity`: the heatmap on top (one colour scale for
    all cells), the example sequence below where one was stored."""
    representatives = {cell: first_seed(group)
                       for cell, group in by_cell(dynamics_runs(runs, "connectivity")).items()}
    positive = np.concatenate([np.ravel(positive_or_nan(r.dynamics["connectivity"]))
                               for r in representatives.values()])
    positive = positive[np.isfinite(positive)]
    low, high = np.log10([positive.min(), positive.max()]) if positive.size else (-1.0, 0.0)
    high = max(high, low + 1e-6)  # a constant map still needs a scale
    examples = any(dynamics_runs(list(representatives.values()), "connectivity_examples"))
    figure = Figure(figsize=(max(4.6 * len(representatives) + 1.2, 7.0), 7.4 if examples else 4.2),
                    layout="constrained")
    axes = figure.subplots(2 if examples else 1, len(representatives), squeeze=False)
    for column, (cell, run) in enumerate(representatives.items()):
        mesh = heatmap_panel(axes[0, column], cell, run, low, high)
        axes[0, column].set_xlabel("time step t (input x_t)")
        if examples and dynamics_runs([run], "connectivity_examples"):
            example_panel(axes[1, column], cell, run)
        elif examples:
            axes[1, column].set_axis_off()
    axes[0, 0].set_ylabel("training step")
    zeros = any((r.dynamics["connectivity"] == 0).any() for r in representatives.values())
    bar = figure.colorbar(mesh, ax=list(axes[0]), extend="min" if zeros else "neither")
    bar.set_label("log10 ‖∂ŷ/∂x_t‖" + (" (white: exactly 0)" if zeros else ""))
    figure.suptitle(f"{title}: input connectivity, how much the prediction depends on x_t")
    return figure
