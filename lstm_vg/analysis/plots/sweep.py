"""Figure 4, sweep summary, for each swept key other than the cell: final eval loss, steps to
solve and the gradient ratio at step 0 against the key."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from lstm_vg.analysis.grouping import by_cell, sort_key
from lstm_vg.analysis.plots.curves import criterion_text, loss_threshold
from lstm_vg.analysis.plots.style import (
    BASELINE_STYLE,
    LOSS_LABELS,
    THRESHOLD_STYLE,
    cell_colour,
    cell_label,
    draw_spread,
    log_limits,
    mark_bottom,
    seeds_phrase,
    spans_decades,
    spread,
)
from lstm_vg.results.read import RunResult


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def field_stack(runs: list[RunResult], key: str, values: list, field: str) -> np.ndarray:
    """(seeds, len(values)) of summary[field] per swept value; NaN pads missing seeds and nulls."""
    columns = [[r.summary.get(field) for r in runs if r.value(key) == v] for v in values]
    depth = max(1, max(len(c) for c in columns))
    stack = np.full((depth, len(values)), np.nan)
    for j, column in enumerate(columns):
        stack[: len(column), j] = [np.nan if v is None else v for v in column]
    return stack


def key_label(key: str) -> str:
    return "T (task.length)" if key == "task.length" else key


def sweep_loss_panel(ax, cells: dict, key: str, values: list, x: np.ndarray) -> None:
    """Final eval loss against the key: median and min–max per cell, baseline, loss threshold."""
    stacks = {cell: field_stack(group, key, values, "final_eval_loss") for cell, group in cells.items()}
    runs = [r for group in cells.values() for r in group]
    baselines = spread(field_stack(runs, key, values, "baseline_loss"))[0]
    criterion = runs[0].solved_criterion()
    threshold = loss_threshold(criterion)
    if spans_decades(*stacks.values(), baselines, np.array([threshold])):
        ax.set_yscale("log")
    for cell, stack in stacks.items():
        draw_spread(ax, x, stack, cell_colour(cell), f"{cell}:final_eval_loss", label=cell_label(cell),
                    marker="o")
    ax.plot(x, baselines, gid="baseline", label="baseline (input-blind)", **BASELINE_STYLE)
    if np.isfinite(threshold):
        ax.axhline(threshold, gid="threshold", label=criterion_text(criterion), **THRESHOLD_STYLE)
    ax.set_ylabel(f"final eval loss ({LOSS_LABELS.get(runs[0].task, 'loss')})")


def sweep_solve_panel(ax, cells: dict, key: str, values: list, x: np.ndarray) -> None:
    """Median steps to solve over the seeds that solved; × above the end of training where no
    seed solved."""
    steps = max(max((r.summary.get("steps") or 0) for group in cells.values() for r in group), 1)
    ax.axhline(steps, color="0.5", linewidth=1, gid="end", label=f"end of training ({steps} steps)")
    for index, (cell, group) in enumerate(cells.items()):
        stack = field_stack(group, key, values, "steps_to_solve")
        draw_spread(ax, x, stack, cell_colour(cell), f"{cell}:steps_to_solve", label=cell_label(cell),
                    marker="o")
        unsolved = x[np.isnan(stack).all(axis=0)]
        if unsolved.size:  # an empty unclipped line would break the layout
            ax.plot(unsolved, np.full(len(unsolved), steps * (1.08 + 0.08 * index)), linestyle="none",
                    marker="x", markersize=8, color=cell_colour(cell), gid=f"{cell}:unsolved",
                    label=f"{cell_label(cell)}: no seed solved")
    ax.set_ylim(0, steps * (1.16 + 0.08 * len(cells)))
    ax.set_ylabel("steps to solve (median over solved seeds)")


def sweep_ratio_panel(ax, cells: dict, key: str, values: list, x: np.ndarray) -> None:
    """‖∂L/∂h_1‖/‖∂L/∂h_T‖ at step 0 against the key, log y; ▼ where a seed's ratio is 0."""
    stacks = {cell: field_stack(group, key, values, "grad_ratio_init") for cell, group in cells.items()}
    bottom, top = log_limits(*stacks.values())
    ax.set_yscale("log")
    for cell, stack in stacks.items():
        draw_spread(ax, x, stack, cell_colour(cell), f"{cell}:grad_ratio_init", bottom,
                    label=cell_label(cell), marker="o")
        mark_bottom(ax, x[(stack == 0).any(axis=0)], cell_colour(cell), f"{cell}:grad_ratio_init:zeros")
    ax.set_ylim(bottom, top)
    ax.set_ylabel("‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ at step 0")


def sweep_figure(runs: list[RunResult], key: str, title: str) -> Figure:
    """Final eval loss, steps to solve and gradient ratio at step 0 against the swept `key`,
    one line per cell (median over seeds, band = min–max). Runs without a summary are left out."""
    cells = by_cell([r for r in runs if r.summary is not None])
    values = sorted({r.value(key) for group in cells.values() for r in group}, key=sort_key)
    numeric = all(is_number(v) for v in values)
    x = np.array(values, np.float64) if numeric else np.arange(len(values), dtype=np.float64)
    figure = Figure(figsize=(14.0, 4.2), layout="constrained")
    axes = figure.subplots(1, 3, sharex=True)
    for panel, ax in zip((sweep_loss_panel, sweep_solve_panel, sweep_ratio_panel), axes, strict=True):
        panel(ax, cells, key, values, x)
        ax.set_xlabel(key_label(key))
        ax.set_xticks(x, [str(v) for v in values])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(f"{title}: final results against {key_label(key).split(' (')[0]} "
                    f"({seeds_phrase(runs, key)} per point)")
    return figure
