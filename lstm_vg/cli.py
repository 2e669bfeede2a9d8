"""The `lstm-vg` command line: parse, call one library function, print."""

from __future__ import annotations

import os
import platform
import shlex
import signal
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from lstm_vg import __version__, config, experiments, runner
from lstm_vg.errors import UserError

app = typer.Typer(
    help="Show, measure and reproduce the vanishing gradient of tanh RNNs, and how LSTMs fix it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (logs, CI) is not squeezed into rich's default 80 columns.
console = Console(width=None if sys.stdout.isatty() else 120)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 1000)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (the runner saves and marks its runs), but exit code 143."""


def terminate(signum, frame):
    raise Terminated()


@contextmanager
def user_errors(resume_hint: str = ""):
    """User mistakes → one line on stderr, exit 2; Ctrl-C (SIGINT) → a note, exit 130; SIGTERM
    → the same note, exit 143. `resume_hint`: the command that continues interrupted runs."""
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    except UserError as error:
        errors.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt as interrupt:
        how = "terminated" if isinstance(interrupt, Terminated) else "interrupted"
        hint = f"; continue with: {resume_hint}" if resume_hint else ""
        say(errors, f"{how}: runs in progress are marked 'interrupted', their last checkpoints and "
                    f"finished files are kept{hint}")
        raise typer.Exit(143 if isinstance(interrupt, Terminated) else 130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        if task.finished and task.elapsed:
            return Text(f"{task.completed / task.elapsed:.1f} steps/s")
        return Text(f"{task.speed:.1f} steps/s" if task.speed else "compiling…")


class RichProgress:
    """A rich progress bar per batch of runs: step, mean train loss, steps/s, ETA."""

    def __init__(self, console: Console):
        self.console = console

    def start(self, label: str, total_steps: int, runs: int) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=20),
            TextColumn("step {task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]}"), RateColumn(), TimeRemainingColumn(),
            console=self.console,
        )
        self.bar.start()
        self.task = self.bar.add_task(label, total=total_steps, loss="–")

    def advance(self, step: int, mean_train_loss: float) -> None:
        self.bar.update(self.task, completed=step, loss=f"{mean_train_loss:.4f}")

    def stop(self) -> None:
        self.bar.stop()


def number(value, digits=3) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def summary_table(summaries: list[dict]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, caption="eval: fixed eval batch after the last step · "
                  "grad ratio: ‖∂L/∂h_1‖/‖∂L/∂h_T‖ at the first and last logged step")
    table.add_column("run", no_wrap=True)
    for column in ("status", "eval loss", "baseline", "acc", "solved@", "ratio init", "ratio end"):
        table.add_column(column, justify="right", no_wrap=True)
    for s in summaries:
        table.add_row(
            s["run"], s["status"], number(s["final_eval_loss"]), number(s["baseline_loss"]),
            f"{s['final_eval_accuracy']:.2f}", number(s["steps_to_solve"]),
            number(s["grad_ratio_init"], 2), number(s["grad_ratio_final"], 2),
        )
    return table


def plan_table(batches: list[dict]) -> Table:
    table = Table(box=None, title="batches (each compiled once, its runs trained together)")
    for column in ("batch", "runs", "memory"):
        table.add_column(column, no_wrap=column != "runs")
    for b in batches:
        table.add_row(b["batch"], ", ".join(b["runs"]), f"{b['gib']:.2f} of {b['limit_gib']:.1f} GiB")
    return table


DEVICES = typer.Option(None, "--devices", min=1, metavar="N",
                       help="Split each batch's runs over the first N devices [default: all].")
HOST_DEVICES = typer.Option(None, "--host-devices", min=1, metavar="N",
                            help="CPU only: make the CPU N devices first [default: one per core].")
SPLIT_BATCH = typer.Option(False, "--split-batch",
                           help="Devices left over when a batch has fewer runs than devices split "
                                "each run's training batch (faster; equal to one device only to rounding).")


DISTRIBUTED = typer.Option(False, "--distributed",
                           help="Join a multi-process run (jax.distributed; see docs/performance.md): "
                                "each process trains its share of the runs on its own devices.")


def start_distributed() -> None:
    """jax.distributed.initialize from the environment: JAX_COORDINATOR_ADDRESS (host:port of
    process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID; on a TPU pod, Slurm or Open MPI, JAX
    detects what is not set."""
    import jax

    numbers = {}
    for name in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        value = os.environ.get(name)
        if value is not None and not value.isdigit():
            raise UserError(f"--distributed: {name}={value!r}: expected a whole number")
        numbers[name] = None if value is None else int(value)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # barriers between CPU hosts
    try:
        jax.distributed.initialize(num_processes=numbers["JAX_NUM_PROCESSES"],
                                   process_id=numbers["JAX_PROCESS_ID"])
    except (ValueError, TypeError, RuntimeError) as error:
        raise UserError(f"--distributed: {error}; set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES "
                        f"and JAX_PROCESS_ID, or run under a TPU pod, Slurm or Open MPI") from None


def cpu_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def choose_devices(count: int | None, host_devices: int | None, distributed: bool = False) -> list:
    """The devices to split runs over: the first `count` of this process's (after splitting
    the CPU into `host_devices` devices, by default one per core, and joining a multi-process
    run, both of which must happen before JAX first computes anything). On a CPU one device per
    core trains one run per core at once: small matmuls gain little from a second thread."""
    import jax

    # one per core unless the user split the CPU already (JAX_NUM_CPU_DEVICES or XLA_FLAGS)
    chosen_by_user = (jax.config.jax_num_cpu_devices >= 0
                      or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""))
    try:
        if host_devices is not None or not chosen_by_user:
            jax.config.update("jax_num_cpu_devices", host_devices or cpu_cores())
    except RuntimeError as error:  # JAX's backends are already running (an in-process call)
        if host_devices is not None:
            raise UserError(f"--host-devices: too late to split the CPU: {error}") from None
    if distributed:
        start_distributed()
    available = jax.local_devices()
    if count is not None and count > len(available):
        raise UserError(f"--devices {count}: only {len(available)} device(s) available "
                        f"({', '.join(map(str, available))}); on a CPU add --host-devices {count}")
    return available[:count]


@app.command()
def run(
    config_file: Path = typer.Argument(..., metavar="CONFIG", help="Experiment YAML, e.g. configs/adding.yaml."),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="Override a config key, e.g. --set model.hidden=64 (repeatable)."),
    seeds: Optional[int] = typer.Option(None, min=1, help="Run seeds 0..N-1 instead of the config's."),
    steps: Optional[int] = typer.Option(None, min=1, help="Override train.steps."),
    out: Path = typer.Option(Path("results"), help="Results root; runs go to OUT/<name>/<run>/."),
    overwrite: bool = typer.Option(False, help="Replace an existing OUT/<name>/ folder."),
    resume: bool = typer.Option(False, help="Continue OUT/<name>/: keep finished runs, resume "
                                "unfinished ones from their last checkpoint, start missing ones."),
    devices: Optional[int] = DEVICES,
    host_devices: Optional[int] = HOST_DEVICES,
    split_batch: bool = SPLIT_BATCH,
    distributed: bool = DISTRIBUTED,
    dry_run: bool = typer.Option(False, "--dry-run", help="Check CONFIG and show the batches of runs "
                                 "and their memory estimates; train nothing."),
) -> None:
    """Train every run of CONFIG (sweep grid × seeds) and write its results folder."""
    if overwrite and resume:
        say(errors, "error: --overwrite and --resume exclude each other")
        raise typer.Exit(2)
    again = [a for a in sys.argv[1:] if a not in ("--overwrite", "--resume")]
    with user_errors(resume_hint=shlex.join(["lstm-vg", *again, "--resume"])):
        experiment = config.load(config_file, set_, seeds, steps)
        chosen = choose_devices(devices, host_devices, distributed)
        if dry_run:
            console.print(plan_table(runner.plan(experiment, chosen, split_batch)))
            return
        folder, summaries = runner.run_experiment(experiment, out, overwrite, RichProgress(console),
                                                  devices=chosen, split_batch=split_batch,
                                                  resume=resume)
    console.print(summary_table(summaries))
    console.print(f"results: {folder}")


class ImageFormat(str, Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


class TableFormat(str, Enum):
    markdown = "markdown"
    csv = "csv"
    json = "json"


def say(stream: Console, text: str) -> None:
    """One unwrapped, unstyled line (paths may hold '[', which rich would read as markup)."""
    stream.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command()
def plot(
    path: Path = typer.Argument(..., metavar="PATH", help="A run, an experiment folder or a results tree."),
    out: Optional[Path] = typer.Option(None, help="Write every figure here instead of <experiment>/plots/."),
    format_: ImageFormat = typer.Option(ImageFormat.png, "--format", help="Image format."),
) -> None:
    """Draw the gradient-decay, heatmap, learning-curve and sweep figures of the runs below PATH."""
    from lstm_vg import plots  # matplotlib loads only for the command that draws

    with user_errors():
        plotted = plots.plot_path(path, out, format_.value)
    for warning in plotted.warnings:
        say(errors, f"warning: {warning}")
    for note in plotted.notes:
        say(console, f"note: {note}")
    for file in plotted.files:
        say(console, str(file))


@app.command()
def report(
    path: Path = typer.Argument(..., metavar="PATH", help="A run, an experiment folder or a results tree."),
    format_: TableFormat = typer.Option(TableFormat.markdown, "--format", help="Table format."),
    check: bool = typer.Option(False, "--check", help="Also check the claims of PATH/experiment.yaml "
                               "(written by `reproduce`); exit 1 if one fails."),
) -> None:
    """One row per experiment, cell and swept values: losses, solved fraction, gradient decay."""
    from lstm_vg import report as reports

    with user_errors():
        text, warnings = reports.report_path(path, format_.value)
        verdicts = experiments.check(path, experiments.saved_claims(path))[0] if check else []
    for warning in warnings:
        say(errors, f"warning: {warning}")
    typer.echo(text, nl=not text.endswith("\n"))
    if check:
        claims_verdict(verdicts)


def claims_table(verdicts) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="claims")
    for column in ("claim", "measured", "verdict"):
        table.add_column(column, overflow="fold")
    for v in verdicts:
        left = "—" if v.left is None else f"{v.left:.4g}"
        right = "—" if v.right is None else f"{v.right:.4g}"
        measured = v.problem or f"{left} {v.claim.operator} {right}"
        table.add_row(v.claim.text, measured, "[green]holds[/]" if v.holds else "[red]FAILS[/]")
    return table


def claims_verdict(verdicts) -> None:
    """Print the claims table; exit 1 when a claim fails."""
    console.print(claims_table(verdicts))
    failed = sum(not v.holds for v in verdicts)
    console.print(f"{len(verdicts) - failed} of {len(verdicts)} claims hold")
    if failed:
        raise typer.Exit(1)


@app.command()
def reproduce(
    experiment_file: Path = typer.Argument(..., metavar="EXPERIMENT", help="e.g. experiments/ci.yaml."),
    out: Path = typer.Option(Path("results"), help="Results root; runs go to OUT/<name>/<config>/<run>/."),
    devices: Optional[int] = DEVICES,
    host_devices: Optional[int] = HOST_DEVICES,
    split_batch: bool = SPLIT_BATCH,
    distributed: bool = DISTRIBUTED,
) -> None:
    """Run what EXPERIMENT needs that is not yet run (finished runs are reused), then check its
    claims: a table of claim, measured value and verdict; exit 1 if a claim fails."""
    with user_errors(resume_hint=shlex.join(["lstm-vg", *sys.argv[1:]])):
        experiment = experiments.load(experiment_file)
        chosen = choose_devices(devices, host_devices, distributed)
        folder, verdicts, warnings = experiments.reproduce(experiment, out, RichProgress(console),
                                                           chosen, split_batch)
    for warning in warnings:
        say(errors, f"warning: {warning}")
    say(console, f"results: {folder}")
    claims_verdict(verdicts)


@app.command()
def info(host_devices: Optional[int] = HOST_DEVICES) -> None:
    """Versions and the devices `run` trains on."""
    import jax
    import jaxlib
    import optax

    console.print(f"lstm-vg {__version__} · python {platform.python_version()} · jax {jax.__version__} "
                  f"· jaxlib {jaxlib.__version__} · optax {optax.__version__}")
    devices = choose_devices(None, host_devices)
    console.print(f"backend: {jax.default_backend()} · {cpu_cores()} CPU core(s) · {len(devices)} device(s)")
    for device in devices:
        console.print(f"  {device.id}: {device.device_kind} ({device.platform})")


def main() -> None:
    app()
