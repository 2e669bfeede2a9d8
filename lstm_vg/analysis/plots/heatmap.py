"""Figure 2, decay heatmap: log10 ‖∂L/∂h_t‖ over (training step × t), one panel per cell."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from lstm_vg.analysis.grouping import by_cell
from lstm_vg.analysis.plots.style import ZERO_LABEL, cell_colour, cell_label, common_prefix, spread
from lstm_vg.results.read import RunResult


def log10_or_below(values: np.ndarray, below: float) -> np.ndarray:
    """log10 of positive values; exact zeros → `below` (under the colour scale: the 'under'
    colour); non-finite values → NaN (the 'bad' colour)."""
    out = np.full(values.shape, np.nan)
    np.log10(values, out=out, where=np.isfinite(values) & (values > 0))
    return np.where(values == 0, below, out)


def edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges around sorted centres (n,) → (n+1,)."""
    centres = np.asarray(centres, np.float64)
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    middle = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]])


def heatmap_medians(runs: list[RunResult]) -> tuple[np.ndarray, np.ndarray]:
    """(steps (logs,), median over seeds of the runs' `grad_profile`, h_norms or the cell's
    recurrent state's (logs, T'))."""
    stack = common_prefix([r.norms[r.grad_profile] for r in runs])
    return runs[0].norms["steps"][: stack.shape[1]], spread(stack)[0]


def decay_heatmap_figure(runs: list[RunResult], title: str) -> Figure:
    """One panel per cell: colour = log10 ‖∂L/∂h_t‖ (median over seeds), x = t, y = training step.

    Exact zeros are drawn in the colour map's 'under' colour (white), below the scale.
    """
    cells = by_cell([r for r in runs if r.norms is not None])
    medians = {cell: heatmap_medians(group) for cell, group in cells.items()}
    positive = np.concatenate([m[np.isfinite(m) & (m > 0)] for _, m in medians.values()])
    low, high = np.log10([positive.min(), positive.max()]) if positive.size else (-1.0, 0.0)
    data = {cell: (steps, log10_or_below(m, low - 1)) for cell, (steps, m) in medians.items()}
    has_zero = any((m == 0).any() for _, m in medians.values())
    cmap = colormaps["viridis"].with_extremes(under="white", bad="0.6")
    figure = Figure(figsize=(4.4 * len(cells) + 1.2, 4.2), layout="constrained")
    axes = figure.subplots(1, len(cells), sharey=True, squeeze=False)[0]
    for ax, (cell, (steps, values)) in zip(axes, data.items(), strict=True):
        t = np.arange(1, values.shape[1] + 1)
        mesh = ax.pcolormesh(edges(t), edges(steps), values, cmap=cmap, vmin=low, vmax=high,
                             gid=f"{cell}:heatmap")
        profile = cells[cell][0].grad_profile
        name = "" if profile == "h_norms" else f" · ‖∂L/∂{profile.removesuffix('_norms')}_t‖"
        ax.set_title(cell_label(cell) + name, color=cell_colour(cell))
        ax.set_xlabel("time step t (1 = first input)")
    axes[0].set_ylabel("training step")
    bar = figure.colorbar(mesh, ax=list(axes), extend="min" if has_zero else "neither")
    other = any(group[0].grad_profile != "h_norms" for group in cells.values())
    bar.set_label(f"log10 ‖∂L/∂h_t‖{' (or the state in the title)' if other else ''} (median over seeds)")
    if has_zero:
        figure.legend(handles=[Patch(facecolor="white", edgecolor="0.2", label=ZERO_LABEL)],
                      fontsize=8, loc="outside lower right")
    figure.suptitle(f"{title}: how the gradient profile changes while training")
    return figure
