"""Figure 3, learning curves: train and eval loss (and accuracy where it decides "solved") per
cell against training steps, baseline dashed, solved threshold dotted."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from lstm_vg.analysis.grouping import by_cell
from lstm_vg.analysis.plots.style import (
    BASELINE_STYLE,
    LOSS_LABELS,
    THRESHOLD_STYLE,
    cell_colour,
    cell_label,
    common_prefix,
    draw_spread,
    seeds_phrase,
    spans_decades,
)
from lstm_vg.results.read import RunResult

SYMBOLS = {"<=": "≤", ">=": "≥"}


def criterion_text(criterion: tuple[str, str, float]) -> str:
    metric, relation, threshold = criterion
    return f"solved: {metric.replace('_', ' ')} {SYMBOLS[relation]} {threshold:g}"


def loss_threshold(criterion) -> float:
    """The solved threshold when it applies to the eval loss (adding), else NaN."""
    return criterion[2] if criterion and criterion[0] == "eval_loss" else np.nan


def decorate_metric_panel(ax, column: str, run: RunResult, log_losses: bool) -> None:
    """Scale, baseline (loss panels), solved threshold (its metric's panel) and labels."""
    criterion, baseline = run.solved_criterion(), run.baseline_loss
    if column == "eval_accuracy":
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("eval accuracy (fraction)")
    else:
        ax.set_yscale("log" if log_losses else "linear")
        if baseline is not None:
            ax.axhline(baseline, gid="baseline", label=f"baseline {baseline:.3g} (input-blind)",
                       **BASELINE_STYLE)
        ax.set_ylabel(f"{column.replace('_', ' ')} ({LOSS_LABELS.get(run.task, 'loss')})")
    if criterion and criterion[0] == column:
        ax.axhline(criterion[2], gid="threshold", label=criterion_text(criterion), **THRESHOLD_STYLE)
    ax.set_xlabel("training step")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def learning_curves_figure(runs: list[RunResult], title: str) -> Figure:
    """Panels: train loss, eval loss (and eval accuracy when it decides "solved"), against steps.

    Median over seeds with a min–max band per cell; baseline dashed on loss panels; the solved
    threshold dotted on the panel of the metric it applies to; log y when the losses span decades.
    """
    cells = by_cell([r for r in runs if r.metrics is not None and r.metrics["step"].size])
    criterion = runs[0].solved_criterion()
    by_accuracy = criterion is not None and criterion[0] == "eval_accuracy"
    columns = ["train_loss", "eval_loss"] + (["eval_accuracy"] if by_accuracy else [])
    stacks = {(cell, c): common_prefix([r.metrics[c] for r in group])
              for cell, group in cells.items() for c in columns}
    losses = [s for (_, c), s in stacks.items() if c != "eval_accuracy"]
    marks = np.array([runs[0].baseline_loss or np.nan, loss_threshold(criterion)])
    log_losses = spans_decades(*losses, marks)
    figure = Figure(figsize=(4.4 * len(columns) + 0.4, 4.0), layout="constrained")
    axes = figure.subplots(1, len(columns), squeeze=False)[0]
    axes[1].sharey(axes[0])  # train and eval loss on one scale
    for ax, column in zip(axes, columns, strict=True):
        for cell, group in cells.items():
            steps = group[0].metrics["step"][: stacks[cell, column].shape[1]]
            draw_spread(ax, steps, stacks[cell, column], cell_colour(cell), f"{cell}:{column}",
                        label=cell_label(cell))
        decorate_metric_panel(ax, column, runs[0], log_losses)
    figure.suptitle(f"{title}: learning curves ({seeds_phrase(runs)})")
    return figure
