"""TensorBoard event files from results folders (`lstm-vg export PATH --tensorboard DIR`).

One TensorBoard run per lstm-vg run, at DIR/<experiment>/<run>/ (the run folder's path below the
results root), so TensorBoard's run selector puts the RNN and the LSTM side by side. Each holds,
per logged step (docs/plots.md#tensorboard lists the tags):

- scalars: metrics.csv's columns (`task/…`); the figures summary.json keeps of the first and last
  step, at every step, by `results.summary`'s own functions (`gradient/…`: ‖∂L/∂s_1‖/‖∂L/∂s_T'‖,
  the decay rate, steps in the past; `dynamics/…`: λ₁, σ_max, ρ, … where dynamics.npz exists);
- an image, `gradient/profile`: log10 ‖∂L/∂s_t‖ against t for every profile in gradients.npz.
  An image rather than a histogram: TensorBoard's histogram of a profile counts its values and
  drops t, so an exponential decay and any shuffle of it look the same; the image keeps t on the
  x axis, where the decay is the slope (decades per step) and exact zeros are marked ▼.

Written with tensorboardX (the `tensorboard` extra): its `FileWriter` and event protos only.
"""

from __future__ import annotations

import io
import math
import struct
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lstm_vg.analysis import grouping
from lstm_vg.analysis.plots.style import NORM_STYLES, cell_colour, cell_label, log_limits
from lstm_vg.errors import UserError
from lstm_vg.results import summary
from lstm_vg.results.format import DYNAMICS_CONSTANTS
from lstm_vg.results.read import RunResult

INSTALL = "pip install 'lstm-vg[tensorboard]'"
METRICS = ("train_loss", "eval_loss", "eval_accuracy", "grad_norm")  # metrics.csv → task/<column>
DYNAMICS = ("lyapunov_max", "predicted_decay_rate", "decay_explained", "sigma_max", "spectral_radius",
            "timescale_median")  # summary.dynamics_fields' figures → dynamics/<name>
EVENT_FILES = "events.out.tfevents.*"
IMAGE_INCHES, IMAGE_DPI = (6.4, 3.6), 100  # 640×360 px

Scalars = dict[str, list[tuple[int, float]]]  # tag → [(step, value)], in step order


@dataclass(frozen=True)
class Exported:
    """What `export` wrote: DIR, the TensorBoard run names (DIR/<name>/), unreadable runs skipped."""

    folder: Path
    runs: list[str]
    warnings: list[str]


def writer_class():
    """tensorboardX's `FileWriter` and `Summary` proto; a UserError naming the extra if missing."""
    # tensorboardX imports torch when it can, only to accept its tensors (4 s and ~600 modules on
    # a machine with the `bench` extra); a None entry in sys.modules makes that import fail fast.
    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None
    try:
        from tensorboardX import FileWriter
        from tensorboardX.proto.summary_pb2 import Summary
    except ImportError as error:  # e.g. "No module named 'tensorboardX'"
        raise UserError(f"--tensorboard needs tensorboardX ({error}); install it with: {INSTALL}") from None
    finally:
        if blocked and sys.modules.get("torch", ...) is None:
            del sys.modules["torch"]
    return FileWriter, Summary


# ---- what a run's event file holds ---------------------------------------------------------------


def metric_scalars(run: RunResult) -> Scalars:
    """metrics.csv's columns per logged step (NaN kept: a diverged run's loss)."""
    if run.metrics is None:
        return {}
    steps = run.metrics["step"]
    return {f"task/{column}": list(zip(steps.tolist(), run.metrics[column].tolist(), strict=True))
            for column in METRICS}


def one_log(arrays: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """The k-th logged row of every per-log array, as a one-row log: what summary.py's first and
    last step figures read, so that they give the figure of step k."""
    return {name: a[k:k + 1] for name, a in arrays.items() if name not in DYNAMICS_CONSTANTS}


def profile_names(run: RunResult) -> list[str]:
    """The gradient profiles of gradients.npz (h_norms, c_norms, x_norms, …), grad_profile first."""
    names = sorted(n for n in run.norms or {} if n.endswith("_norms"))
    return sorted(names, key=lambda n: n != run.grad_profile)


def gradient_scalars(run: RunResult) -> Scalars:
    """Per logged step: summary.json's `grad_ratio`, `decay_rate` and `steps_in_past` of the run's
    grad_profile as gradient/<figure>, and `grad_ratio`, `decay_rate` of every other profile as
    gradient/<profile>/<figure>; log10_grad_ratio too (a ratio of 1e-100 is 0 in float32)."""
    if not has_profiles(run):
        return {}
    out: Scalars = {}
    for k, step in enumerate(run.norms["steps"].tolist()):
        for name in profile_names(run):
            prefix = "gradient" if name == run.grad_profile else f"gradient/{name}"
            ratio = summary.grad_ratio(run.norms[name][k])
            add(out, f"{prefix}/grad_ratio", step, ratio)
            add(out, f"{prefix}/log10_grad_ratio", step, math.log10(ratio) if ratio else None)
            add(out, f"{prefix}/decay_rate", step, summary.decay_rate(run.norms[name][k]))
        past = summary.past_fields(one_log(run.norms, k), run.grad_profile)
        add(out, "gradient/steps_in_past", step, past["steps_in_past_init"])
    return out


def dynamics_scalars(run: RunResult) -> Scalars:
    """Per logged step of dynamics.npz: summary.json's dynamics figures (λ₁, the decay it predicts
    and the share of the measured one it explains, σ_max and ρ of W_h, the median timescale) as
    dynamics/<figure>; those a cell has not (σ_max of the LSTM) are left out."""
    if run.dynamics is None:
        return {}
    norms = run.norms or {}
    rows = {step: k for k, step in enumerate(norms.get("steps", np.zeros(0)).tolist())}
    out: Scalars = {}
    for k, step in enumerate(run.dynamics["steps"].tolist()):
        profile = norms[run.grad_profile][rows[step]] if step in rows else np.full(1, np.nan)
        fields = summary.dynamics_fields(one_log(run.dynamics, k), profile[None])
        for name in DYNAMICS:
            add(out, f"dynamics/{name}", step, fields[f"{name}_init"])
    return out


def add(series: Scalars, tag: str, step: int, value) -> None:
    """Append (step, value) to the tag's series; None (an undefined figure) is left out."""
    if value is not None:
        series.setdefault(tag, []).append((step, float(value)))


def scalars(run: RunResult) -> Scalars:
    """Every scalar series of the run: task/…, gradient/…, dynamics/…."""
    return metric_scalars(run) | gradient_scalars(run) | dynamics_scalars(run)


def wall_times(run: RunResult):
    """step → seconds since the epoch at which it was logged (meta.json's `started` plus the
    row's wall_seconds), so TensorBoard's "relative" axis is training time; None when unknown."""
    started = run.meta.get("started")
    if not started or run.metrics is None or not run.metrics["step"].size:
        return None
    start = datetime.fromisoformat(started).timestamp()
    steps, seconds = run.metrics["step"], run.metrics["wall_seconds"]
    return lambda step: start + float(np.interp(step, steps, np.nan_to_num(seconds)))


# ---- the profile image ---------------------------------------------------------------------------


def log10_limits(runs) -> tuple[float, float]:
    """One y range (log10) for every profile image of these runs: the same axis for the cells."""
    low, high = log_limits(*[run.norms[n] for run in runs for n in profile_names(run)])
    return math.log10(low), math.log10(high)


class ProfileImage:
    """One figure per run, redrawn per logged step: log10 ‖∂L/∂s_t‖ against t = 1 … T', every
    profile in the cell's colour (h solid, c dotted, others as docs/plots.md's decay figure), exact
    zeros ▼ on the bottom edge."""

    def __init__(self, run: RunResult, name: str, limits: tuple[float, float]):
        self.run, self.name = run, name
        # fixed margins: a layout engine would solve the layout again at every step (2× slower)
        self.figure = Figure(figsize=IMAGE_INCHES, dpi=IMAGE_DPI)
        self.figure.subplots_adjust(left=0.11, right=0.97, bottom=0.13, top=0.92)
        self.ax = self.figure.add_subplot()
        colour = cell_colour(run.cell)
        self.lines, self.zeros = {}, {}
        for profile in profile_names(run):
            style, label = NORM_STYLES.get(profile, ("-.", f"‖∂L/∂{profile.removesuffix('_norms')}_t‖"))
            self.lines[profile], = self.ax.plot([], [], color=colour, linestyle=style, label=label)
            self.zeros[profile], = self.ax.plot([], [], linestyle="none", marker="v", color=colour,
                                                transform=self.ax.get_xaxis_transform(), clip_on=False,
                                                markerfacecolor=colour if style == "-" else "white")
        self.ax.set(xlim=(1, run.norms[run.grad_profile].shape[1]), ylim=limits, xlabel="t",
                    ylabel="log10 ‖∂L/∂s_t‖")
        self.ax.legend(loc="upper left", fontsize="small")
        self.ax.grid(alpha=0.3)

    def png(self, k: int) -> tuple[bytes, int, int]:
        """The image of the k-th logged step: (PNG bytes, height, width)."""
        for profile, line in self.lines.items():
            norms = np.asarray(self.run.norms[profile][k], np.float64)
            t = np.arange(1, norms.size + 1)
            shown = np.isfinite(norms) & (norms > 0)
            line.set_data(t, np.where(shown, np.log10(np.where(shown, norms, 1)), np.nan))
            self.zeros[profile].set_data(t[norms == 0], np.zeros(int(np.sum(norms == 0))))
        rate = summary.decay_rate(self.run.norms[self.run.grad_profile][k])
        slope = "" if rate is None else f", decay {rate:.3g} decades/step"
        step = int(self.run.norms["steps"][k])
        self.ax.set_title(f"{self.name} ({cell_label(self.run.cell)}), step {step}{slope}", fontsize="small")
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=IMAGE_DPI)
        png = buffer.getvalue()
        width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR chunk
        return png, height, width


# ---- writing -------------------------------------------------------------------------------------


def run_names(runs: list[RunResult], path: Path) -> dict[Path, str]:
    """Each run's TensorBoard name: its folder's path below the results root, at least
    <experiment>/<run> (a PATH that is an experiment or a run folder is climbed out of)."""
    root = path.resolve()
    folders = [run.folder.resolve() for run in runs]
    while root.parent != root and any(len(f.relative_to(root).parts) < 2 for f in folders):
        root = root.parent
    return {run.folder: folder.relative_to(root).as_posix()
            for run, folder in zip(runs, folders, strict=True)}


def unwritable(folder: Path, error: OSError) -> UserError:
    return UserError(f"{folder}: cannot write TensorBoard files there ({error.strerror or error})")


def writable(out: Path) -> None:
    """Make `out`, or say in one line why it cannot be written, before anything is written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".lstm-vg-write-test").touch()
        (out / ".lstm-vg-write-test").unlink()
    except OSError as error:
        raise unwritable(out, error) from None


def has_profiles(run: RunResult) -> bool:
    """Whether gradients.npz holds the run's grad_profile (a run just started may have none yet)."""
    return run.norms is not None and run.grad_profile in run.norms


def summaries(run: RunResult, name: str, limits: tuple[float, float], Summary) -> dict[int, object]:
    """step → one `Summary` proto: every scalar of that logged step and its profile image."""
    values: dict[int, list] = {}
    for tag, points in scalars(run).items():
        for step, value in points:
            values.setdefault(step, []).append(Summary.Value(tag=tag, simple_value=value))
    if has_profiles(run):
        image = ProfileImage(run, name, limits)
        for k, step in enumerate(run.norms["steps"].tolist()):
            png, height, width = image.png(k)
            picture = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
            values.setdefault(step, []).append(Summary.Value(tag="gradient/profile", image=picture))
    return {step: Summary(value=values[step]) for step in sorted(values)}


def write_run(run: RunResult, out: Path, name: str, limits: tuple[float, float]) -> None:
    """The run's event file in out/<name>/, one event per logged step in step order, replacing
    the files an earlier export wrote there (TensorBoard would show every point twice)."""
    FileWriter, Summary = writer_class()
    events = summaries(run, name, limits, Summary)
    logdir = out / name
    logdir.mkdir(parents=True, exist_ok=True)
    for old in logdir.glob(EVENT_FILES):
        old.unlink()
    when = wall_times(run) or (lambda step: None)
    writer = FileWriter(str(logdir))
    try:
        for step, event in events.items():
            writer.add_summary(event, step, when(step))
    finally:
        writer.close()


def export_path(path: Path, out: Path) -> Exported:
    """TensorBoard event files for every run below `path`, into out/<experiment>/<run>/."""
    writer_class()  # before any work: the missing extra is the first thing to say
    experiments, warnings = grouping.load_results(path)
    writable(out)
    names = run_names([run for e in experiments for run in e.runs], path)
    for experiment in experiments:
        drawn = [run for run in experiment.runs if has_profiles(run)]
        limits = log10_limits(drawn) if drawn else (-3.0, 0.0)
        for run in experiment.runs:
            try:
                write_run(run, out, names[run.folder], limits)
            except OSError as error:
                raise unwritable(out / names[run.folder], error) from None
    return Exported(out, sorted(names.values()), warnings)
