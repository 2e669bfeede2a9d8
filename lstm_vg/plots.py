"""Figures that make the vanishing gradient visible, drawn from results folders only.

Four figures per experiment (docs/plots.md says how to read them):

1. gradient decay: ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) against t, one column per cell, at step 0 and at
   the last logged step; median over seeds, band = min–max; exact zeros marked on the bottom axis;
2. decay heatmap: log10 ‖∂L/∂h_t‖ over (training step × t), one panel per cell;
3. learning curves: train and eval loss (and accuracy where it decides "solved") per cell,
   baseline dashed, solved threshold dotted;
4. sweep summary, for each swept key other than the cell: final eval loss, steps to solve and the
   gradient ratio at step 0 against the key.

Figures are `matplotlib.figure.Figure` objects (no pyplot state). Every drawn line carries a gid
"<cell>:<quantity>[:<when>]" so tests and notebooks can find the data behind it.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from lstm_vg import results
from lstm_vg.errors import UserError
from lstm_vg.results import Experiment, RunResult

CELL_COLOURS = {"rnn": "#D55E00", "lstm": "#0072B2"}  # Okabe–Ito vermillion and blue
OTHER_COLOURS = ("#009E73", "#CC79A7", "#E69F00", "#56B4E9")
CELL_LABELS = {"rnn": "tanh RNN", "lstm": "LSTM"}
LOSS_LABELS = {"adding": "MSE", "copy": "cross-entropy per step (nats)"}
BASELINE_STYLE = {"color": "0.25", "linestyle": "--", "linewidth": 1.2}
THRESHOLD_STYLE = {"color": "#009E73", "linestyle": ":", "linewidth": 1.8}
NORM_STYLES = {"h_norms": ("-", "‖∂L/∂h_t‖"), "c_norms": (":", "‖∂L/∂c_t‖")}
ZERO_LABEL = "exact 0 (float32 underflow)"
ZERO_LABELS = {"h_norms": "‖∂L/∂h_t‖ = 0 exactly (float32 underflow)",
               "c_norms": "‖∂L/∂c_t‖ = 0 exactly"}
FORMATS = ("png", "svg", "pdf")
DPI = 130


def cell_colour(cell: str) -> str:
    """The one colour of `cell` in every figure."""
    if cell in CELL_COLOURS:
        return CELL_COLOURS[cell]
    return OTHER_COLOURS[sum(map(ord, cell)) % len(OTHER_COLOURS)]


def cell_label(cell: str) -> str:
    return CELL_LABELS.get(cell, cell)


def common_prefix(arrays: list[np.ndarray]) -> np.ndarray:
    """(seeds, n, …) from arrays of shape (n_i, …): cut to the shortest (running runs lag)."""
    n = min(a.shape[0] for a in arrays)
    return np.stack([np.asarray(a[:n], np.float64) for a in arrays])


def spread(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, min and max over seeds (axis 0) of (seeds, …), ignoring NaNs (diverged runs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column is NaN, no warning
        return np.nanmedian(stack, 0), np.nanmin(stack, 0), np.nanmax(stack, 0)


def positive_or_nan(values: np.ndarray) -> np.ndarray:
    """Zeros and non-finite values become NaN: a log axis cannot show them (they are marked)."""
    values = np.asarray(values, np.float64)
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def spans_decades(*arrays) -> bool:
    """True when the positive finite values span at least one decade: use a log axis."""
    values = np.concatenate([positive_or_nan(np.ravel(a)) for a in arrays])
    values = values[np.isfinite(values)]
    return values.size > 0 and values.max() / values.min() >= 10


def log_limits(*arrays) -> tuple[float, float]:
    """Log-axis limits with room below for the zero markers."""
    values = np.concatenate([positive_or_nan(np.ravel(a)) for a in arrays])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1e-3, 1.0
    return values.min() / 4, values.max() * 2


def mark_bottom(ax, x: np.ndarray, colour: str, gid: str, filled: bool = True,
                label: str = ZERO_LABEL) -> None:
    """Markers on the bottom edge of `ax` at positions x: values that are exactly zero."""
    if len(x) == 0:
        return
    ax.plot(x, np.zeros(len(x)), transform=ax.get_xaxis_transform(), linestyle="none",
            marker="v", markersize=6, color=colour, markerfacecolor=colour if filled else "white",
            clip_on=False, gid=gid, label=label)


def draw_spread(ax, x: np.ndarray, stack: np.ndarray, colour: str, gid: str, bottom: float | None = None,
                linestyle: str = "-", label: str | None = None, marker: str | None = None) -> None:
    """Median line and min–max band over seeds of stack (seeds, n) at x (n,).

    On a log axis (bottom given) zeros are left out of the line and the band reaches `bottom`.
    """
    median, low, high = spread(stack)
    line = median if bottom is None else positive_or_nan(median)
    ax.plot(x, line, color=colour, linestyle=linestyle, linewidth=1.8, gid=gid, label=label, marker=marker)
    if bottom is not None:  # the band reaches the bottom where some (not most) seeds are 0
        low = np.where(np.isnan(line), np.nan, np.where(low > 0, low, bottom))
    if stack.shape[0] > 1:
        ax.fill_between(x, low, high, color=colour, alpha=0.18, linewidth=0, gid=f"{gid}:band")


def title_of(runs: list[RunResult], extra: tuple = ()) -> str:
    """"adding, T=100" plus any other swept values."""
    run = runs[0]
    words = [f"{run.task}, T={run.length}"]
    words += [f"{key.split('.')[-1]}={value}" for key, value in extra
              if key not in ("task.name", "task.length")]
    return ", ".join(words)


def seeds_phrase(runs: list[RunResult], key: str | None = None) -> str:
    """"median of 3 seeds, band = min–max": seeds per cell (and per value of the swept `key`)."""
    sizes = Counter((r.cell, repr(r.value(key)) if key else None) for r in runs)
    n = max(sizes.values())
    return "1 seed" if n == 1 else f"median of {n} seeds, band = min–max"


def annotate_decay(ax, runs: list[RunResult], row: int) -> None:
    """The stored headline numbers of the profile at log `row`: median gradient ratio and decay rate."""
    when = "init" if row == 0 else "final"
    done = [r.summary for r in runs if r.summary is not None]
    ratio = median_or_none([s.get(f"grad_ratio_{when}") for s in done])
    rate = median_or_none([s.get(f"decay_rate_{when}") for s in done])
    if ratio is None and rate is None:
        return
    lines = [] if ratio is None else [f"‖∂L/∂h_1‖/‖∂L/∂h_T‖ = {ratio:.2g}"]
    lines += [] if rate is None else [f"decay rate {rate:.3g} decades/step"]
    ax.text(0.98, 0.04, "\n".join(lines), transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.85})


def median_or_none(values: list) -> float | None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.median(finite)) if finite else None


# ---- 1. gradient decay -------------------------------------------------------------------------


def profile_stack(runs: list[RunResult], quantity: str, row: int) -> np.ndarray | None:
    """(seeds, T') profiles of `quantity` at log `row` (0 or -1) of the runs that have it."""
    profiles = [r.norms[quantity][row] for r in runs if r.norms and quantity in r.norms]
    return np.stack(profiles).astype(np.float64) if profiles else None


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

    Each panel: median over seeds of h_norms[row] (solid) and c_norms[row] (dotted) against
    t = 1 … T', a min–max band, and ▼ on the bottom axis where any seed's norm is exactly 0.
    """
    cells = results.by_cell([r for r in runs if r.norms is not None])
    stacks = {(cell, q, row): profile_stack(group, q, row)
              for cell, group in cells.items() for q in NORM_STYLES for row in (0, -1)}
    bottom, top = log_limits(*[s for s in stacks.values() if s is not None])
    figure = Figure(figsize=(4.6 * len(cells) + 0.6, 6.6), layout="constrained")
    axes = figure.subplots(2, len(cells), sharex=True, sharey=True, squeeze=False)
    for column, (cell, group) in enumerate(cells.items()):
        colour = cell_colour(cell)
        for row_index, row in enumerate((0, -1)):
            ax = axes[row_index, column]
            ax.set_yscale("log")
            for quantity, (style, name) in NORM_STYLES.items():
                stack = stacks[cell, quantity, row]
                if stack is None:
                    continue
                gid = f"{cell}:{quantity}:{'init' if row == 0 else 'final'}"
                t = np.arange(1, stack.shape[1] + 1)
                draw_spread(ax, t, stack, colour, gid, bottom, style, name)
                zeros = t[(stack == 0).any(axis=0)]
                mark_bottom(ax, zeros, colour, f"{gid}:zeros", quantity == "h_norms", ZERO_LABELS[quantity])
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


# ---- 2. decay heatmap --------------------------------------------------------------------------


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
    """(steps (logs,), median over seeds of h_norms (logs, T'))."""
    stack = common_prefix([r.norms["h_norms"] for r in runs])
    return runs[0].norms["steps"][: stack.shape[1]], spread(stack)[0]


def decay_heatmap_figure(runs: list[RunResult], title: str) -> Figure:
    """One panel per cell: colour = log10 ‖∂L/∂h_t‖ (median over seeds), x = t, y = training step.

    Exact zeros are drawn in the colour map's 'under' colour (white), below the scale.
    """
    cells = results.by_cell([r for r in runs if r.norms is not None])
    medians = {cell: heatmap_medians(group) for cell, group in cells.items()}
    positive = np.concatenate([m[np.isfinite(m) & (m > 0)] for _, m in medians.values()])
    low, high = np.log10([positive.min(), positive.max()]) if positive.size else (-1.0, 0.0)
    data = {cell: (steps, log10_or_below(m, low - 1)) for cell, (steps, m) in medians.items()}
    has_zero = any((m == 0).any() for _, m in medians.values())
    cmap = colormaps["viridis"].with_extremes(under="white", bad="0.6")
    figure = Figure(figsize=(4.4 * len(cells) + 1.2, 4.2), layout="constrained")
    axes = figure.subplots(1, len(cells), sharey=True, squeeze=False)[0]
    for ax, (cell, (steps, values)) in zip(axes, data.items()):
        t = np.arange(1, values.shape[1] + 1)
        mesh = ax.pcolormesh(edges(t), edges(steps), values, cmap=cmap, vmin=low, vmax=high,
                             gid=f"{cell}:heatmap")
        ax.set_title(cell_label(cell), color=cell_colour(cell))
        ax.set_xlabel("time step t (1 = first input)")
    axes[0].set_ylabel("training step")
    bar = figure.colorbar(mesh, ax=list(axes), extend="min" if has_zero else "neither")
    bar.set_label("log10 ‖∂L/∂h_t‖ (median over seeds)")
    if has_zero:
        figure.legend(handles=[Patch(facecolor="white", edgecolor="0.2", label=ZERO_LABEL)],
                      fontsize=8, loc="outside lower right")
    figure.suptitle(f"{title}: how the gradient profile changes while training")
    return figure


# ---- 3. learning curves ------------------------------------------------------------------------


def criterion_text(criterion: tuple[str, str, float]) -> str:
    metric, relation, threshold = criterion
    return f"solved: {metric.replace('_', ' ')} {relation} {threshold:g}"


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
    cells = results.by_cell([r for r in runs if r.metrics is not None and r.metrics["step"].size])
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
    for ax, column in zip(axes, columns):
        for cell, group in cells.items():
            steps = group[0].metrics["step"][: stacks[cell, column].shape[1]]
            draw_spread(ax, steps, stacks[cell, column], cell_colour(cell), f"{cell}:{column}",
                        label=cell_label(cell))
        decorate_metric_panel(ax, column, runs[0], log_losses)
    figure.suptitle(f"{title}: learning curves ({seeds_phrase(runs)})")
    return figure


# ---- 4. sweep summary --------------------------------------------------------------------------


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
    cells = results.by_cell([r for r in runs if r.summary is not None])
    values = sorted({r.value(key) for group in cells.values() for r in group}, key=results.sort_key)
    numeric = all(is_number(v) for v in values)
    x = np.array(values, np.float64) if numeric else np.arange(len(values), dtype=np.float64)
    figure = Figure(figsize=(14.0, 4.2), layout="constrained")
    axes = figure.subplots(1, 3, sharex=True)
    for panel, ax in zip((sweep_loss_panel, sweep_solve_panel, sweep_ratio_panel), axes):
        panel(ax, cells, key, values, x)
        ax.set_xlabel(key_label(key))
        ax.set_xticks(x, [str(v) for v in values])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(f"{title}: final results against {key_label(key).split(' (')[0]} "
                    f"({seeds_phrase(runs, key)} per point)")
    return figure


# ---- all figures of an experiment, and writing them --------------------------------------------


def suffix(setting: tuple) -> str:
    """"" or "_length=50,lr=0.01": the setting's swept values, named as in run folders."""
    parts = [f"{key.split('.')[-1]}={value}" for key, value in setting]
    return "_" + ",".join(parts) if parts else ""


def setting_figures(experiment: Experiment, setting: tuple, runs: list[RunResult]) -> tuple[dict, list[str]]:
    """Figures 1–3 for the runs of one setting, and notes on what could not be drawn."""
    figures, notes, title = {}, [], title_of(runs, setting)
    where = f"{experiment.folder} ({title})"
    with_norms = [r for r in runs if r.norms is not None and r.norms["steps"].size]
    if with_norms:
        figures[f"gradient-decay{suffix(setting)}"] = gradient_decay_figure(with_norms, title)
        figures[f"decay-heatmap{suffix(setting)}"] = decay_heatmap_figure(with_norms, title)
        if not any("c_norms" in r.norms for r in with_norms):
            notes.append(f"{where}: no ‖∂L/∂c_t‖ to draw "
                         f"(only cells with a cell state, like the LSTM, log it)")
    else:
        notes.append(f"{where}: no gradient profiles yet (gradients.npz missing); no gradient figures")
    if any(r.metrics is not None and r.metrics["step"].size for r in runs):
        figures[f"learning-curves{suffix(setting)}"] = learning_curves_figure(runs, title)
    else:
        notes.append(f"{where}: no metrics yet (metrics.csv missing); no learning curves")
    return figures, notes


def sweep_figures(experiment: Experiment) -> tuple[dict, list[str]]:
    """Figure 4 for each swept key other than the cell that takes ≥ 2 values."""
    figures, notes = {}, []
    keys = [k for k in experiment.swept_keys if k != results.CELL_KEY]
    done = [r for r in experiment.runs if r.summary is not None]
    for key in keys:
        others = [k for k in keys if k != key]
        groups: dict[tuple, list[RunResult]] = {}
        for run in done:
            groups.setdefault(tuple((k, run.value(k)) for k in others), []).append(run)
        for fixed, group in sorted(groups.items(), key=lambda kv: [results.sort_key(v) for _, v in kv[0]]):
            if len({repr(r.value(key)) for r in group}) > 1:
                title = ", ".join([group[0].task] + [f"{k.split('.')[-1]}={v}" for k, v in fixed])
                figures[f"sweep-{key.split('.')[-1]}{suffix(fixed)}"] = sweep_figure(group, key, title)
    if not figures:
        reason = "no run has finished (no summary.json)" if not done else \
            "it sweeps no key other than the cell over two or more finished values"
        notes.append(f"{experiment.folder}: no sweep figure: {reason}")
    return figures, notes


def running_notes(experiment: Experiment) -> list[str]:
    notes = []
    for run in experiment.runs:
        if run.status == "running":
            step = int(run.metrics["step"][-1]) if run.metrics is not None and run.metrics["step"].size else 0
            notes.append(f"{run.folder}: no summary.json yet (still running?): drawn up to step {step} "
                         f"of {run.total_steps}, left out of the sweep figure")
    return notes


def experiment_figures(experiment: Experiment) -> tuple[dict[str, Figure], list[str]]:
    """{file stem: Figure} for every figure of the experiment, and notes on what was not drawn."""
    figures, notes = {}, running_notes(experiment)
    for setting, runs in experiment.settings().items():
        more, why = setting_figures(experiment, setting, runs)
        figures |= more
        notes += why
    more, why = sweep_figures(experiment)
    return figures | more, notes + why


@dataclass(frozen=True)
class Plotted:
    files: list[Path]  # every file written, in order
    warnings: list[str]  # runs skipped as unreadable
    notes: list[str]  # figures that could not be drawn, and why


def output_folders(experiments: list[Experiment], out: Path | None) -> dict[Path, Path]:
    """Experiment folder → where its figures go: <experiment>/plots/, or `out` for all of them."""
    if out is None:
        return {e.folder: e.folder / "plots" for e in experiments}
    names = [e.name for e in experiments]
    clash = next((n for n in names if names.count(n) > 1), None)
    if clash:
        raise UserError(f"--out {out}: two experiment folders are named {clash!r} and their figures "
                        f"would overwrite each other; plot them one at a time")
    return {e.folder: out for e in experiments}


def plot_path(path: Path, out: Path | None = None, fmt: str = "png") -> Plotted:
    """Load every run below `path` and write all figures; file names are <experiment>_<figure>.<fmt>."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: not a figure format; allowed: {', '.join(FORMATS)}")
    experiments, skipped = results.load(Path(path))
    folders = output_folders(experiments, out)
    files, notes = [], []
    for experiment in experiments:
        figures, why = experiment_figures(experiment)
        notes += why
        for stem, figure in figures.items():
            files.append(save(figure, folders[experiment.folder] / f"{experiment.name}_{stem}.{fmt}", fmt))
    return Plotted(files, skipped, notes)


def save(figure: Figure, file: Path, fmt: str) -> Path:
    """Write one figure, creating its folder; an unwritable place is a one-line UserError."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(file, format=fmt, dpi=DPI)
    except OSError as error:
        raise UserError(f"{file}: cannot write the figure: {error.strerror or error}") from None
    return file
