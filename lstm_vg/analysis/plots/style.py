"""What every figure shares: one colour and label per cell, line styles, and the median and
min–max band over seeds drawn the same way everywhere."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np

from lstm_vg.results.read import RunResult

CELL_COLOURS = {"rnn": "#D55E00", "lstm": "#0072B2", "gru": "#CC79A7",  # Okabe–Ito
                "indrnn": "#009E73", "exprnn": "#E69F00", "lru": "#56B4E9"}
OTHER_COLOURS = ("#000000", "#8C564B", "#7F7F7F")  # any other cell: none a built-in's
CELL_LABELS = {"rnn": "tanh RNN", "lstm": "LSTM", "gru": "GRU", "indrnn": "IndRNN", "exprnn": "expRNN",
               "lru": "LRU"}
LOSS_LABELS = {"adding": "MSE", "copy": "cross-entropy per step (nats)", "multiplication": "MSE",
               "temporal_order": "cross-entropy at the last step (nats)"}
BASELINE_STYLE = {"color": "0.25", "linestyle": "--", "linewidth": 1.2}
THRESHOLD_STYLE = {"color": "#BCBD22", "linestyle": ":", "linewidth": 1.8}  # no cell's colour
NORM_STYLES = {"h_norms": ("-", "‖∂L/∂h_t‖"), "c_norms": (":", "‖∂L/∂c_t‖"),
               "x_norms": ("--", "‖∂L/∂x_t‖")}
ZERO_LABEL = "exact 0 (float32 underflow)"
ZERO_LABELS = {"h_norms": "‖∂L/∂h_t‖ = 0 exactly (float32 underflow)",
               "c_norms": "‖∂L/∂c_t‖ = 0 exactly", "x_norms": "‖∂L/∂x_t‖ = 0 exactly"}


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


# ---- the dynamics figures (dynamics.npz; docs/plots.md) --------------------------------------

THEORY_STYLES = {"lyapunov": {"linestyle": "-.", "linewidth": 1.1},  # thin: a prediction, not data
                 "bound": {"linestyle": (0, (1, 1.5)), "linewidth": 1.3}}
THEORY_LABELS = {"lyapunov": "Lyapunov λ₁ slope (λ₁ = {:.3g}/step)",
                 "bound": "Pascanu bound σ_max^{{T−t}} (σ_max = {:.3g})"}
REFERENCE_STYLE = {"color": "0.35", "linewidth": 0.9}  # the zero line, σ = 1: no cell's colour


def dynamics_runs(runs: list[RunResult], *names: str) -> list[RunResult]:
    """The runs whose dynamics.npz holds every array in `names` with at least one logged row
    (runs without the file, older results, have none)."""
    return [r for r in runs if r.dynamics is not None and r.dynamics["steps"].size
            and all(name in r.dynamics and r.dynamics[name].size for name in names)]


def first_seed(runs: list[RunResult]) -> RunResult:
    """The run of the lowest seed: the representative of figures that show one run."""
    return min(runs, key=lambda r: (r.seed is None, r.seed or 0))


def finite_limits(*arrays, floor: float = -np.inf) -> tuple[float, float] | None:
    """(low, high) of the finite values with a 5% margin, low no lower than `floor`; None if none."""
    values = np.concatenate([np.ravel(np.asarray(a, np.float64)) for a in arrays])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    low, high = max(values.min(), floor), values.max()
    pad = 0.05 * (high - low) or 0.05 * max(abs(high), 1e-3)
    return low - pad, high + pad
