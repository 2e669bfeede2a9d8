"""The Python API: what a notebook, a script or the CLI calls. Every `lstm-vg` command is one call
of a function here. Importing it loads no JAX: the functions that train import it when called.

    import lstm_vg
    cfg = lstm_vg.load_config("configs/adding.yaml", overrides=["task.length=50"])
    results = lstm_vg.run(cfg, out="results")   # the experiment folder (a path)
    print(lstm_vg.report(results))               # the table, as markdown
    lstm_vg.plot(results)                        # the figures, into <folder>/plots/
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lstm_vg import config, experiments
from lstm_vg.config import Config
from lstm_vg.errors import UserError
from lstm_vg.experiments import Experiment

PathLike = str | os.PathLike


def load_config(path: PathLike, overrides=(), seeds: int | None = None,
                steps: int | None = None) -> Config:
    """A validated config from a YAML file, after `overrides` ("model.hidden=64", as `--set`)
    and the `seeds` (0 … N−1) and `steps` shortcuts."""
    return config.load(path, overrides, seeds, steps)


def config_from_dict(mapping: dict, name: str = "experiment") -> Config:
    """A validated config from a mapping with a config file's keys (`name` unless it has one)."""
    return config.from_mapping(mapping, f"config {name!r}", default_name=name)


def load_experiment(path: PathLike) -> Experiment:
    """An experiment file: its configs and its claims (experiments/*.yaml)."""
    return experiments.load(path)


@dataclass(frozen=True)
class Trained:
    """What `run` trained: the experiment folder (use it as a path) and the summaries of the
    runs trained by this call (finished runs reused by `resume` are not among them)."""

    folder: Path
    summaries: list[dict]

    def __fspath__(self) -> str:
        return str(self.folder)


def choose_devices(devices: int | None = None, host_devices: int | None = None,
                   distributed: bool = False) -> list:
    """The devices training uses (see `lstm_vg.devices.choose`): the first `devices` of this
    process's, after splitting a CPU into `host_devices` (by default one per core, when JAX has
    not started yet) and joining a multi-process run."""
    from lstm_vg import devices as device_setup

    return device_setup.choose(devices, host_devices, distributed)


def plan(cfg: Config, devices: int | None = None, host_devices: int | None = None,
         distributed: bool = False, split_batch: bool = False) -> list:
    """The batches `run` would train (`training.plan.Batch`: runs, devices, memory estimate),
    each compiled once; a UserError for a batch that cannot fit. Trains nothing."""
    from lstm_vg.training import plan as planning

    chosen = choose_devices(devices, host_devices, distributed)
    return planning.plan(cfg, chosen, split_batch)


def run(cfg: Config, out: PathLike = "results", *, overwrite: bool = False, resume: bool = False,
        devices: int | None = None, host_devices: int | None = None, distributed: bool = False,
        split_batch: bool = False, progress=None) -> Trained:
    """Train every run of `cfg` (sweep grid × seeds) into <out>/<cfg.name>/<run>/.

    Arguments:
        overwrite: replace an existing experiment folder; resume: continue it (finished runs are
            kept, interrupted ones continue from their checkpoints). Without either an existing
            non-empty folder is a UserError.
        devices, host_devices, distributed: see `choose_devices`; split_batch: spare devices
            split each run's training batch (equal to one device only to rounding).
        progress: a `training.loop.Progress` (the CLI's: `lstm_vg.progress.progress_for(console)`,
            a progress bar and the gradient profile at every log); None shows nothing.
    """
    if overwrite and resume:
        raise UserError("--overwrite and --resume exclude each other")
    from lstm_vg.training import loop

    chosen = choose_devices(devices, host_devices, distributed)
    folder, summaries = loop.run_experiment(cfg, Path(out), overwrite, progress, chosen, split_batch,
                                            resume)
    return Trained(folder, summaries)


@dataclass(frozen=True)
class Reproduced:
    """What `reproduce` did: the experiment folder, each claim's verdict, unreadable runs."""

    folder: Path
    verdicts: list
    warnings: list[str]

    @property
    def holds(self) -> bool:
        return all(verdict.holds for verdict in self.verdicts)

    def __fspath__(self) -> str:
        return str(self.folder)


def reproduce(experiment: PathLike | Experiment, out: PathLike = "results", *,
              devices: int | None = None, host_devices: int | None = None, distributed: bool = False,
              split_batch: bool = False, progress=None) -> Reproduced:
    """Train what the experiment needs that is not trained yet in <out>/<name>/ (finished runs
    are reused, interrupted ones resumed), then check its claims on the finished runs there."""
    if not isinstance(experiment, Experiment):
        experiment = experiments.load(experiment)
    from lstm_vg.training import loop

    chosen = choose_devices(devices, host_devices, distributed)
    folder = experiments.prepare(experiment, Path(out))
    for c in experiment.configs:
        loop.run_experiment(c, folder, progress=progress, devices=chosen, split_batch=split_batch,
                            resume=True)
    verdicts, warnings = experiments.check(folder, experiment.claims)
    return Reproduced(folder, verdicts, warnings)


def check_claims(folder: PathLike) -> Reproduced:
    """The claims of the experiment `reproduce` wrote in `folder`, checked again on its runs."""
    verdicts, warnings = experiments.check(Path(folder), experiments.saved_claims(Path(folder)))
    return Reproduced(Path(folder), verdicts, warnings)


def load_results(path: PathLike):
    """The runs below `path` grouped by experiment folder (`analysis.grouping.ExperimentResults`),
    and one warning per unreadable run skipped."""
    from lstm_vg.analysis import grouping

    return grouping.load_results(Path(path))


@dataclass(frozen=True)
class Report:
    """The table of `report`: its text (str() of it), and one warning per unreadable run."""

    text: str
    format: str
    warnings: list[str]

    def __str__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str | None:  # Jupyter shows a markdown report as a table
        return self.text if self.format == "markdown" else None

    def write(self, file: PathLike) -> Path:
        """Write the text to `file` (its folder created); an unwritable place is a UserError.
        A plain write: the file gets the umask's permissions, as every results file does."""
        file = Path(file)
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(self.text, encoding="utf-8")
        except OSError as error:
            raise UserError(f"{file}: cannot write the report: {error.strerror or error}") from None
        return file


def report(path: PathLike, format: str = "markdown") -> Report:
    """One row per experiment, cell and swept values of the runs below `path`: losses, solved
    fraction, gradient decay; `format` markdown, csv, json or html (one self-contained page: the
    table, the claims of `path`/experiment.yaml checked, every figure, the configs, the versions)."""
    from lstm_vg.analysis import report as tables

    if format == "html":
        return html_report(Path(path))
    if format not in tables.FORMATS:
        raise UserError(f"--format {format}: not a report format; allowed: {', '.join(tables.FORMATS)}, html")
    text, warnings = tables.report_path(Path(path), format)
    return Report(text, format, warnings)


def html_report(path: Path) -> Report:
    """`report(path, "html")`: the page of `analysis.html`, with the claims `reproduce` saved in
    `path`, checked, and the experiment file's description, when it saved them."""
    from lstm_vg.analysis import grouping, html  # matplotlib loads only when something is drawn

    found, warnings = grouping.load_results(path)
    saved = path / experiments.CLAIMS_FILE
    verdicts = check_claims(path).verdicts if saved.exists() else None
    description = experiments.read_mapping(saved).get("description") if saved.exists() else None
    title = f"{path.resolve().name} · lstm-vg report"
    page = html.page(found, verdicts, title, description, html.saved_figures(found))
    return Report(page, "html", warnings)


def plot(path: PathLike, out: PathLike | None = None, format: str = "png"):
    """Every figure of the runs below `path`, written to <experiment>/plots/ (or `out`) as
    `format` (png, svg or pdf); returns `analysis.plots.Plotted` (files, warnings, notes)."""
    from lstm_vg.analysis import plots  # matplotlib loads only when something is drawn

    return plots.plot_path(Path(path), None if out is None else Path(out), format)


def figures(path: PathLike) -> dict:
    """The figures `plot` would write for the runs below `path`, drawn but not written: a dict
    from the file stem `plot` would use ("<experiment>_gradient-decay", …) to its
    `matplotlib.figure.Figure`, for a notebook to show (`%matplotlib inline`) or restyle.
    Unreadable runs are skipped and figures with nothing to draw left out (`plot` says why)."""
    from lstm_vg.analysis import grouping, plots

    experiments, _ = grouping.load_results(Path(path))
    return {f"{experiment.name}_{stem}": figure for experiment in experiments
            for stem, figure in plots.experiment_figures(experiment)[0].items()}


def export(path: PathLike, tensorboard: PathLike):
    """TensorBoard event files of the runs below `path`, one TensorBoard run per run at
    <tensorboard>/<experiment>/<run>/ (scalars, gradient profiles and diagnostics per logged
    step; needs the `tensorboard` extra); returns `analysis.tensorboard.Exported`."""
    from lstm_vg.analysis import tensorboard as events

    return events.export_path(Path(path), Path(tensorboard))
