"""Figures that make the vanishing gradient visible, drawn from results folders only.

Four figures per experiment (docs/plots.md says how to read them):

1. gradient decay: ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) against t, one column per cell, at step 0 and at
   the last logged step; median over seeds, band = min–max; exact zeros marked on the bottom axis;
2. decay heatmap: log10 ‖∂L/∂h_t‖ over (training step × t), one panel per cell;
3. learning curves: train and eval loss (and accuracy where it decides "solved") per cell,
   baseline dashed, solved threshold dotted;
4. sweep summary, for each swept key other than the cell: final eval loss, steps to solve and the
   gradient ratio at step 0 against the key;

and, from dynamics.npz where the runs logged it (figure 1 then also draws the theory lines: the
Lyapunov λ₁ slope and Pascanu's σ_max bound):

5. spectrum: the Lyapunov exponents over training per cell, and σ_max(W_h), ρ(W_h) below;
6. connectivity: ‖∂ŷ/∂x_t‖ over (training step × t) for one run per cell, and one probe
   sequence's at the first and last logged step with its marked inputs;
7. timescales: histogram of the keep gates' τ over units at init and at the end, per gated cell,
   against the chrono prior τ ~ U(2, T_max).

A figure with nothing to draw (runs without dynamics.npz, older results) is not written.
One module a figure (`decay`, `heatmap`, `curves`, `sweep`, `spectrum`, `connectivity`,
`timescales`; `style` holds what they share).
Figures are `matplotlib.figure.Figure` objects (no pyplot state). Every drawn line carries a gid
"<cell>:<quantity>[:<when>]" so tests and notebooks can find the data behind it.
"""


from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from lstm_vg.analysis import grouping
from lstm_vg.analysis.grouping import ExperimentResults
from lstm_vg.analysis.plots.connectivity import connectivity_figure
from lstm_vg.analysis.plots.curves import learning_curves_figure
from lstm_vg.analysis.plots.decay import gradient_decay_figure
from lstm_vg.analysis.plots.heatmap import decay_heatmap_figure
from lstm_vg.analysis.plots.spectrum import spectrum_figure
from lstm_vg.analysis.plots.style import dynamics_runs, title_of
from lstm_vg.analysis.plots.sweep import sweep_figure
from lstm_vg.analysis.plots.timescales import timescale_figure
from lstm_vg.errors import UserError
from lstm_vg.results.read import RunResult

FORMATS = ("png", "svg", "pdf")
DPI = 130
# The dynamics figures: (file stem, function, the dynamics.npz arrays any one of which it draws).
DYNAMICS_FIGURES = (("spectrum", spectrum_figure, ("lyapunov", "sigma_max")),
                    ("connectivity", connectivity_figure, ("connectivity",)),
                    ("timescales", timescale_figure, ("timescale",)))


def suffix(setting: tuple) -> str:
    """"" or "_length=50,lr=0.01": the setting's swept values, named as in run folders."""
    parts = [f"{key.split('.')[-1]}={value}" for key, value in setting]
    return "_" + ",".join(parts) if parts else ""


def setting_figures(experiment: ExperimentResults, setting: tuple,
                    runs: list[RunResult]) -> tuple[dict, list[str]]:
    """Figures 1–3 (and 5–7) for the runs of one setting, and notes on what could not be drawn."""
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
    return figures | dynamics_figures(setting, runs, title), notes


def dynamics_figures(setting: tuple, runs: list[RunResult], title: str) -> dict[str, Figure]:
    """Figures 5–7 for the runs of one setting, each only where some run logged its arrays
    (no note otherwise: results written before dynamics.npz plot exactly as they did)."""
    return {f"{stem}{suffix(setting)}": draw(runs, title) for stem, draw, names in DYNAMICS_FIGURES
            if any(dynamics_runs(runs, name) for name in names)}


def sweep_figures(experiment: ExperimentResults) -> tuple[dict, list[str]]:
    """Figure 4 for each swept key other than the cell that takes ≥ 2 values."""
    figures, notes = {}, []
    keys = [k for k in experiment.swept_keys if k != grouping.CELL_KEY]
    done = [r for r in experiment.runs if r.summary is not None]
    for key in keys:
        others = [k for k in keys if k != key]
        groups: dict[tuple, list[RunResult]] = {}
        for run in done:
            groups.setdefault(tuple((k, run.value(k)) for k in others), []).append(run)
        for fixed, group in sorted(groups.items(), key=lambda kv: [grouping.sort_key(v) for _, v in kv[0]]):
            if len({repr(r.value(key)) for r in group}) > 1:
                title = ", ".join([group[0].task] + [f"{k.split('.')[-1]}={v}" for k, v in fixed])
                figures[f"sweep-{key.split('.')[-1]}{suffix(fixed)}"] = sweep_figure(group, key, title)
    if not figures:
        reason = "no run has finished (no summary.json)" if not done else \
            "it sweeps no key other than the cell over two or more finished values"
        notes.append(f"{experiment.folder}: no sweep figure: {reason}")
    return figures, notes


def running_notes(experiment: ExperimentResults) -> list[str]:
    notes = []
    for run in experiment.runs:
        if run.status == "running":
            step = int(run.metrics["step"][-1]) if run.metrics is not None and run.metrics["step"].size else 0
            notes.append(f"{run.folder}: no summary.json yet (still running?): drawn up to step {step} "
                         f"of {run.total_steps}, left out of the sweep figure")
    return notes


def experiment_figures(experiment: ExperimentResults) -> tuple[dict[str, Figure], list[str]]:
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


def output_folders(experiments: list[ExperimentResults], out: Path | None) -> dict[Path, Path]:
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
    experiments, skipped = grouping.load_results(Path(path))
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
