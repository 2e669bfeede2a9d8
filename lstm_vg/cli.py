"""The `lstm-vg` command line: parse, call one function of the Python API (`lstm_vg.api`), print.

Importing it loads no JAX: `lstm-vg --help`, `report` and `plot` start fast.
"""

from __future__ import annotations

import shlex
import signal
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from lstm_vg import api
from lstm_vg.analysis.numbers import number
from lstm_vg.errors import UserError
from lstm_vg.progress import progress_for

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


def plan_table(batches: list) -> Table:
    table = Table(box=None, title="batches (each compiled once, its runs trained together)")
    for column in ("batch", "runs", "memory"):
        table.add_column(column, no_wrap=column != "runs")
    for batch in batches:
        memory = batch.memory()
        table.add_row(batch.label, ", ".join(r.name for r in batch.runs),
                      f"{memory['gib']:.2f} of {memory['limit_gib']:.1f} GiB")
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


@app.command()
def run(
    config_file: Path = typer.Argument(..., metavar="CONFIG",
                                       help="Experiment YAML, e.g. configs/adding.yaml."),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="Override a config key, e.g. --set model.hidden=64 (repeatable)."),
    seeds: int | None = typer.Option(None, min=1, help="Run seeds 0..N-1 instead of the config's."),
    steps: int | None = typer.Option(None, min=1, help="Override train.steps."),
    out: Path = typer.Option(Path("results"), help="Results root; runs go to OUT/<name>/<run>/."),
    overwrite: bool = typer.Option(False, help="Replace an existing OUT/<name>/ folder."),
    resume: bool = typer.Option(False, help="Continue OUT/<name>/: keep finished runs, resume "
                                "unfinished ones from their last checkpoint, start missing ones."),
    devices: int | None = DEVICES,
    host_devices: int | None = HOST_DEVICES,
    split_batch: bool = SPLIT_BATCH,
    distributed: bool = DISTRIBUTED,
    dry_run: bool = typer.Option(False, "--dry-run", help="Check CONFIG and show the batches of runs "
                                 "and their memory estimates; train nothing."),
) -> None:
    """Train every run of CONFIG (sweep grid × seeds) and write its results folder."""
    again = [a for a in sys.argv[1:] if a not in ("--overwrite", "--resume")]
    where = dict(devices=devices, host_devices=host_devices, distributed=distributed,
                 split_batch=split_batch)
    with user_errors(resume_hint=shlex.join(["lstm-vg", *again, "--resume"])):
        cfg = api.load_config(config_file, set_, seeds, steps)
        if dry_run:
            console.print(plan_table(api.plan(cfg, **where)))
            return
        trained = api.run(cfg, out, overwrite=overwrite, resume=resume, progress=progress_for(console),
                          **where)
    console.print(summary_table(trained.summaries))
    say(console, f"results: {trained.folder}")
    say(console, f"draw it:     lstm-vg plot {shlex.quote(str(trained.folder))}")
    say(console, f"tabulate it: lstm-vg report {shlex.quote(str(trained.folder))}")


class ImageFormat(str, Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


class TableFormat(str, Enum):
    markdown = "markdown"
    csv = "csv"
    json = "json"
    html = "html"


def say(stream: Console, text: str) -> None:
    """One unwrapped, unstyled line (paths may hold '[', which rich would read as markup)."""
    stream.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command()
def plot(
    path: Path = typer.Argument(..., metavar="PATH", help="A run, an experiment folder or a results tree."),
    out: Path | None = typer.Option(None, help="Write every figure here instead of <experiment>/plots/."),
    format_: ImageFormat = typer.Option(ImageFormat.png, "--format", help="Image format."),
) -> None:
    """Draw the gradient-decay, heatmap, learning-curve and sweep figures of the runs below PATH."""
    with user_errors():
        plotted = api.plot(path, out, format_.value)
    for warning in plotted.warnings:
        say(errors, f"warning: {warning}")
    for note in plotted.notes:
        say(console, f"note: {note}")
    for file in plotted.files:
        say(console, str(file))


@app.command()
def report(
    path: Path = typer.Argument(..., metavar="PATH", help="A run, an experiment folder or a results tree."),
    format_: TableFormat = typer.Option(TableFormat.markdown, "--format", help="Table format; html: "
                                        "one self-contained page with the claims, figures and configs too."),
    out: Path | None = typer.Option(None, "--out", metavar="FILE", help="Write the report to FILE "
                                    "instead of stdout."),
    check: bool = typer.Option(False, "--check", help="Also check the claims of PATH/experiment.yaml "
                               "(written by `reproduce`); exit 1 if one fails."),
) -> None:
    """One row per experiment, cell and swept values: losses, solved fraction, gradient decay."""
    with user_errors():
        if format_ is TableFormat.html and out is None and sys.stdout.isatty():
            raise UserError("--format html: a whole page, not for a terminal; give --out FILE "
                            "(e.g. --out report.html) or redirect stdout")
        table = api.report(path, format_.value)
        checked = api.check_claims(path) if check else None
        written = None if out is None else table.write(out)
    for warning in table.warnings:
        say(errors, f"warning: {warning}")
    if written is None:
        typer.echo(table.text, nl=not table.text.endswith("\n"))
    else:
        say(console, str(written))
    if checked is not None:
        claims_verdict(checked.verdicts)


@app.command()
def export(
    path: Path = typer.Argument(..., metavar="PATH", help="A run, an experiment folder or a results tree."),
    tensorboard: Path = typer.Option(..., "--tensorboard", metavar="DIR",
                                     help="Write TensorBoard event files to DIR/<experiment>/<run>/ "
                                          "(needs lstm-vg's tensorboard extra)."),
) -> None:
    """Export the runs below PATH for TensorBoard: scalars, gradient profiles and diagnostics per
    logged step, one TensorBoard run per run."""
    with user_errors():
        exported = api.export(path, tensorboard)
    for warning in exported.warnings:
        say(errors, f"warning: {warning}")
    for name in exported.runs:
        say(console, name)
    say(console, f"open it: tensorboard --logdir {shlex.quote(str(exported.folder))}")


def claims_table(verdicts) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="claims")
    for column in ("claim", "measured", "verdict"):
        table.add_column(column, overflow="fold")
    for v in verdicts:
        table.add_row(v.claim.text, v.measured, "[green]holds[/]" if v.holds else "[red]FAILS[/]")
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
    devices: int | None = DEVICES,
    host_devices: int | None = HOST_DEVICES,
    split_batch: bool = SPLIT_BATCH,
    distributed: bool = DISTRIBUTED,
) -> None:
    """Run what EXPERIMENT needs that is not yet run (finished runs are reused), then check its
    claims: a table of claim, measured value and verdict; exit 1 if a claim fails."""
    with user_errors(resume_hint=shlex.join(["lstm-vg", *sys.argv[1:]])):
        reproduced = api.reproduce(experiment_file, out, devices=devices, host_devices=host_devices,
                                   distributed=distributed, split_batch=split_batch,
                                   progress=progress_for(console))
    for warning in reproduced.warnings:
        say(errors, f"warning: {warning}")
    say(console, f"results: {reproduced.folder}")
    claims_verdict(reproduced.verdicts)


@app.command()
def info(host_devices: int | None = HOST_DEVICES) -> None:
    """Versions and the devices `run` trains on."""
    from lstm_vg import devices

    with user_errors():
        lines = devices.describe(host_devices)
    for line in lines:
        say(console, line)


def main() -> None:
    app()
