"""The `lstm-vg` command line: parse, call one library function, print."""

from __future__ import annotations

import platform
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from lstm_vg import __version__, config, runner
from lstm_vg.errors import UserError

app = typer.Typer(
    help="Show, measure and reproduce the vanishing gradient of tanh RNNs, and how LSTMs fix it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


@contextmanager
def user_errors():
    """User mistakes → one line on stderr, exit 2; Ctrl-C → a note, exit 130."""
    try:
        yield
    except UserError as error:
        errors.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        errors.print("interrupted: runs in progress are marked 'interrupted'; finished files are kept")
        raise typer.Exit(130) from None


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f} steps/s" if task.speed else "compiling…")


class RichProgress:
    """A rich progress bar per batch of runs: step, mean train loss, steps/s, ETA."""

    def __init__(self, console: Console):
        self.console = console

    def start(self, label: str, total_steps: int, runs: int) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]}"), RateColumn(), TimeRemainingColumn(),
            console=self.console,
        )
        self.bar.start()
        self.task = self.bar.add_task(label, total=total_steps, loss="–")

    def advance(self, step: int, mean_train_loss: float) -> None:
        self.bar.update(self.task, completed=step, loss=f"{mean_train_loss:.4f}")

    def stop(self) -> None:
        self.bar.stop()


def summary_table(summaries: list[dict]) -> Table:
    table = Table(caption="eval = fixed eval batch after the last step; grad ratio = "
                          "‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ at initialisation")
    table.add_column("run", no_wrap=True)
    for column in ("status", "eval loss", "baseline", "accuracy", "solved at", "grad ratio"):
        table.add_column(column, justify="right")
    for s in summaries:
        ratio = s["grad_ratio_init"]
        table.add_row(
            s["run"], s["status"], f"{s['final_eval_loss']:.4g}", f"{s['baseline_loss']:.4g}",
            f"{s['final_eval_accuracy']:.3f}",
            "—" if s["steps_to_solve"] is None else str(s["steps_to_solve"]),
            "—" if ratio is None else f"{ratio:.2e}",
        )
    return table


@app.command()
def run(
    config_file: Path = typer.Argument(..., metavar="CONFIG", help="Experiment YAML, e.g. configs/adding.yaml."),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="Override a config key, e.g. --set model.hidden=64 (repeatable)."),
    seeds: Optional[int] = typer.Option(None, min=1, help="Run seeds 0..N-1 instead of the config's."),
    steps: Optional[int] = typer.Option(None, min=1, help="Override train.steps."),
    out: Path = typer.Option(Path("results"), help="Results root; runs go to OUT/<name>/<run>/."),
    overwrite: bool = typer.Option(False, help="Replace an existing OUT/<name>/ folder."),
) -> None:
    """Train every run of CONFIG (sweep grid × seeds) and write its results folder."""
    with user_errors():
        experiment = config.load(config_file, set_, seeds, steps)
        folder, summaries = runner.run_experiment(experiment, out, overwrite, RichProgress(console))
    console.print(summary_table(summaries))
    console.print(f"results: {folder}")


@app.command()
def info() -> None:
    """Versions and the devices JAX sees."""
    import jax
    import jaxlib
    import optax

    console.print(f"lstm-vg {__version__} · python {platform.python_version()} · jax {jax.__version__} "
                  f"· jaxlib {jaxlib.__version__} · optax {optax.__version__}")
    console.print(f"backend: {jax.default_backend()}")
    for device in jax.devices():
        console.print(f"  {device.id}: {device.device_kind} ({device.platform})")


def main() -> None:
    app()
