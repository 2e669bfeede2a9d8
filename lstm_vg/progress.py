"""What `lstm-vg run` and `reproduce` show while they train: a progress display per batch of runs
(`training.loop.Progress`) and, at every log, the batch's gradient profile in one line.

At a log the loop hands the display the profile it has just logged, ‖∂L/∂s_t‖ of each run,
norms: (runs, T'), already on the host (s: the state summary.json's `grad_profile` names, h or
the cell's `recurrent_state`, e.g. the LRU's x). The line shows, over t = 1 … T' left to right,

    p_t = mean over the runs of log10 ‖∂L/∂s_t‖      (a run's NaN left out; an exact 0 is −∞)

down-sampled to at most WIDTH columns (the mean of p over each column's consecutive steps), one
block a column on a fixed scale: ▁ … █ two decades each from 10^LOW to 10^HIGH, blank below it
(float32's underflow to 0 too), ↑ above it, ? where no run is finite; and the ratio
‖∂L/∂s_1‖/‖∂L/∂s_T'‖ = 10^(p_1 − p_T'), the geometric mean of the runs' ratios. The scale is
the same for every batch, so an RNN's profile is seen to sink while an LSTM's stays level.

On a terminal the line sits under the batch's live progress bar; elsewhere (a pipe, a CI log)
one plain line per log replaces the bar.
"""

from __future__ import annotations

import time

import numpy as np
from rich import progress as bars
from rich.console import Console
from rich.text import Text

WIDTH = 40  # columns of the sparkline at most
# log10 of the scale's ends: on adding T=100 both cells start within 1e-5…1e1 and a trained LSTM
# stays near 1e-2, while a trained RNN's s_1 sinks to 1e-20 and below (float32 zeros at 1e-45)
LOW, HIGH = -14, 2
BLOCKS = "▁▂▃▄▅▆▇█"
BELOW, ABOVE, MISSING = " ", "↑", "?"
LEGEND = (f"gradient profile at each log: ‖∂L/∂s_t‖ over t = 1 … T left to right (s: h, or the cell's "
          f"recurrent state), the mean of log10 over a batch's runs in ≤ {WIDTH} columns; "
          f"{BLOCKS[0]}…{BLOCKS[-1]} span 10^{LOW}…10^{HIGH}, {(HIGH - LOW) // len(BLOCKS)} decades each; "
          f"blank: below 10^{LOW} (exact zeros too), {ABOVE}: above, {MISSING}: NaN")


def log10_profile(norms) -> np.ndarray:
    """p: (T',), the mean over runs of log10 norms (runs, T') or (T',); a run's NaN is left out,
    an exact zero counts as −∞; NaN where no run has a number."""
    norms = np.asarray(norms, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(norms.reshape(-1, norms.shape[-1]))
        kept = ~np.isnan(logs)
        total = np.where(kept, logs, 0.0).sum(axis=0)
        return np.where(kept.any(axis=0), total / np.maximum(kept.sum(axis=0), 1), np.nan)


def block(value: float, low: float = LOW, high: float = HIGH) -> str:
    """The character of one log10 value on the scale [low, high]."""
    if np.isnan(value):
        return MISSING
    if value < low:
        return BELOW
    if value > high:
        return ABOVE
    return BLOCKS[min(int((value - low) / (high - low) * len(BLOCKS)), len(BLOCKS) - 1)]


def sparkline(p, width: int = WIDTH, low: float = LOW, high: float = HIGH) -> str:
    """One character per column of p (log10 values, (T',)): p itself when T' ≤ width, else
    `width` runs of consecutive steps (lengths differing by at most one), each shown by its mean."""
    p = np.asarray(p, np.float64)
    if p.size == 0:
        return ""
    with np.errstate(invalid="ignore"):  # −∞ and +∞ in one column: NaN
        columns = [column.mean() for column in np.array_split(p, min(width, p.size))]
    return "".join(block(value, low, high) for value in columns)


def ratio(p) -> float | None:
    """‖∂L/∂s_1‖/‖∂L/∂s_T'‖ = 10^(p_1 − p_T'); 0 when s_1's norm is 0; None when undefined."""
    first, last = float(p[0]), float(p[-1])
    if np.isnan(first) or first == np.inf or not np.isfinite(last):
        return None
    with np.errstate(over="ignore"):
        return float(np.power(10.0, first - last))


def profile_text(name: str, norms) -> str:
    """The profile line of `name` ("h_norms", the key of gradients.npz) at one log, from each
    run's norms (runs, T'): the ratio, then the sparkline and its scale."""
    s, p = name.removesuffix("_norms"), log10_profile(norms)
    r = ratio(p)
    shown = "–" if r is None else f"{r:.1e}" if r else "0"  # 0: ‖∂L/∂s_1‖ underflowed to exact zeros
    return (f"‖∂L/∂{s}_1‖/‖∂L/∂{s}_T‖ {shown}  "
            f"‖∂L/∂{s}_t‖ t=1…{p.size} ▕{sparkline(p)}▏ 10^{LOW}…10^{HIGH}")


def progress_for(console: Console):
    """The display for this console: live on a terminal, plain lines elsewhere (a pipe, a CI log,
    a dumb terminal)."""
    live = console.is_terminal and not console.is_dumb_terminal
    return RichProgress(console) if live else PlainProgress(console)


def say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


class RateColumn(bars.ProgressColumn):
    def render(self, task) -> Text:
        if task.finished and task.elapsed:
            return Text(f"{task.completed / task.elapsed:.1f} steps/s")
        return Text(f"{task.speed:.1f} steps/s" if task.speed else "compiling…")


class BarAndProfile(bars.Progress):
    """rich's progress display with one more line under its bar: the latest profile line."""

    line = Text()

    def get_renderables(self):
        yield from super().get_renderables()
        if self.line:
            yield self.line


class RichProgress:
    """On a terminal: a live progress bar per batch of runs (step, mean train loss, steps/s, ETA),
    and under it the gradient profile of the latest log, redrawn in place."""

    def __init__(self, console: Console):
        self.console, self.explained = console, False

    def start(self, label: str, total_steps: int, runs: int) -> None:
        if not self.explained:
            say(self.console, LEGEND)
            self.explained = True
        self.bar = BarAndProfile(
            bars.TextColumn("{task.description}"), bars.BarColumn(bar_width=20),
            bars.TextColumn("step {task.completed}/{task.total}"),
            bars.TextColumn("loss {task.fields[loss]}"), RateColumn(), bars.TimeRemainingColumn(),
            console=self.console,
        )
        self.bar.start()
        self.task = self.bar.add_task(label, total=total_steps, loss="–")

    def advance(self, step: int, mean_train_loss: float) -> None:
        self.bar.update(self.task, completed=step, loss=f"{mean_train_loss:.4f}")

    def profile(self, step: int, name: str, norms: np.ndarray) -> None:
        self.bar.line = Text(f"  step {step}: {profile_text(name, norms)}")
        self.bar.refresh()

    def stop(self) -> None:
        self.bar.stop()


class PlainProgress:
    """Without a terminal: no redrawn bar, but one line per log (step, the mean train loss of the
    chunk that reached it, the profile line) and one when the batch ends."""

    def __init__(self, console: Console):
        self.console, self.explained = console, False

    def start(self, label: str, total_steps: int, runs: int) -> None:
        if not self.explained:
            say(self.console, LEGEND)
            self.explained = True
        self.label, self.total_steps, self.started = label, total_steps, time.perf_counter()
        self.step, self.loss = None, None

    def advance(self, step: int, mean_train_loss: float) -> None:
        self.step, self.loss = step, mean_train_loss

    def profile(self, step: int, name: str, norms: np.ndarray) -> None:
        loss = f"{self.loss:.4f}" if self.step == step else "–"  # no chunk before a first log
        say(self.console, f"{self.label}  step {step}/{self.total_steps}  loss {loss}  "
                          f"{profile_text(name, norms)}")

    def stop(self) -> None:
        reached = "no chunk trained" if self.step is None else f"step {self.step}/{self.total_steps}"
        say(self.console, f"{self.label}  {reached} after {time.perf_counter() - self.started:.1f} s")
