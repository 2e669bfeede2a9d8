"""The host loop: train each planned batch of runs on its devices, chunk by chunk, logging and
checkpointing between the compiled calls.

The device does all the numerics (`lstm_vg.core`); between chunks this loop only moves small
metric arrays to the host and writes them, so nothing already measured is lost if it stops.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Protocol

import jax
import numpy as np
from jax.experimental import multihost_utils

from lstm_vg.config import Config, Run
from lstm_vg.core import batched
from lstm_vg.results import write
from lstm_vg.training import checkpoint
from lstm_vg.training.log import RunLog, logged_rows, meta
from lstm_vg.training.plan import Batch, batches, plan


class Progress(Protocol):
    """What the loop reports as it trains (the CLI draws a progress bar from it). A display may
    also have `profile(step, name, norms)` (see `Quiet.profile`): the loop calls it at every log
    when it is there, so a display without it works as before."""

    def start(self, label: str, total_steps: int, runs: int) -> None: ...
    def advance(self, step: int, mean_train_loss: float) -> None: ...
    def stop(self) -> None: ...


class Quiet:
    """A Progress that shows nothing."""

    def start(self, label, total_steps, runs): pass
    def advance(self, step, mean_train_loss): pass
    def stop(self): pass

    def profile(self, step: int, name: str, norms: np.ndarray) -> None:
        """Optional: at every log (after that step's `advance`; step 0's has none), each run's
        headline gradient profile as just logged, `name` its key in gradients.npz (summary.json's
        `grad_profile`: "h_norms", or the cell's `recurrent_state`'s), norms: (runs, T'), on the host."""


def starting_states(batch: Batch, folder: Path, resume: bool):
    """(states, the step they are at, the chunk metrics since the last log): fresh runs, or
    with `resume` the runs' checkpoints (all at one step: see `run_experiment`)."""
    fresh = batch.fresh_states()
    if not resume:
        return fresh, 0, []
    like = [jax.tree.map(lambda a, r=r: a[r], fresh) for r in range(len(batch.runs))]
    loaded = [checkpoint.restore(folder / run.name, state)
              for run, state in zip(batch.runs, like, strict=True)]
    states, windows = zip(*loaded, strict=True)
    window = [{name: np.stack([w[i][name] for w in windows]) for name in checkpoint.WINDOW}
              for i in range(len(windows[0]))]
    return batched.stack(list(states)), int(states[0].step), window


def train_batch(batch: Batch, folder: Path, progress: Progress, resume: bool = False) -> list[dict]:
    """Train one batch of runs to the end (or an interrupt), from scratch or from their
    checkpoints (`resume`); returns their summaries. A checkpoint of every run is written after
    every chunk."""
    c, trainer = batch.config, batch.trainer
    states, start, window = starting_states(batch, folder, resume)
    states = batch.place(states)
    chunk, evaluate = batch.compile()
    logs = [RunLog(run, folder / run.name, meta(run, trainer.task, len(batch.runs),
                                                 max(len(batch.devices), 1), batch.shards, trainer.cell),
                   resume_at=start if resume else None)
            for run in batch.runs]
    # wall_seconds goes on from where a resumed run's last log left it
    clock = time.perf_counter() - (logs[0].rows[-1]["wall_seconds"] if logs[0].rows else 0.0)

    def save_checkpoints() -> None:
        host = jax.device_get(states)
        for r, run_log in enumerate(logs):
            checkpoint.save(run_log.folder, jax.tree.map(lambda a, r=r: a[r], host),
                            [{name: w[name][r] for name in checkpoint.WINDOW} for w in window])

    def log(step: int) -> dict:
        """Log every run at `step`; what `evaluate` brought to the host."""
        logged = jax.device_get(evaluate(states))
        rows = logged_rows(step, logged, window, time.perf_counter() - clock, trainer.cell.carry_names)
        # the rows of padding runs (see `Batch.place`) have no log: zip stops at the last run
        for r, (run_log, (row, profiles)) in enumerate(zip(logs, rows, strict=False)):
            run_log.append(row, profiles, int(logged["diverged_at"][r]))
        window.clear()
        return logged

    def show_profile(step: int, logged: dict) -> None:
        if hasattr(progress, "profile"):  # optional (see `Progress`); nothing more leaves the device
            name = logs[0].meta["grad_profile"]
            progress.profile(step, name, logged[name][: len(logs)])  # without padding runs

    def finish(status: str) -> list[dict]:
        wall = time.perf_counter() - clock
        try:
            params = jax.device_get(states.params)
        except RuntimeError:  # interrupted while a chunk owned (had been donated) the state
            params = None
        return [run_log.finish(trainer.task, status, None if params is None
                               else jax.tree.map(lambda a, r=r: a[r], params), wall)
                for r, run_log in enumerate(logs)]

    progress.start(batch.label, c.train.steps, len(batch.runs))
    try:
        if start % c.log.every == 0 and logs[0].last_step != start:
            show_profile(start, log(start))  # step 0, or a resumed run whose last log was cut off
        for step in range(start + c.chunk_steps, c.train.steps + 1, c.chunk_steps):
            states, metrics = chunk(states)
            metrics = jax.device_get(metrics)
            window.append(metrics)
            logged = log(step) if step % c.log.every == 0 else None
            save_checkpoints()  # after the log: the saved window holds only unlogged chunks
            progress.advance(step, float(np.nanmean(metrics["loss"])))
            if logged is not None:
                show_profile(step, logged)
    except KeyboardInterrupt:
        finish("interrupted")
        raise
    finally:
        progress.stop()
    return finish("done")


def run_experiment(c: Config, out: Path, overwrite: bool = False, progress: Progress | None = None,
                   devices: list | None = None, split_batch: bool = False, resume: bool = False
                   ) -> tuple[Path, list[dict]]:
    """Train every run of the config into <out>/<name>/; returns the folder and the summaries of
    the runs trained now. With `resume`, runs already finished there with the same config are
    kept, unfinished ones with a checkpoint continue from it, the rest start. Each batch's runs
    are split over `devices` (see `plan.layout`). One process at a time writes a folder."""
    plan(c, devices, split_batch)  # refuse what cannot fit before touching the folder
    leader = jax.process_index() == 0
    with write.lock(Path(out), c.name) if leader else contextlib.nullcontext():
        if leader:  # the others wait: with --overwrite the leader empties the folder first
            write.prepare_experiment(Path(out), c.name, overwrite, resume)
        barrier(f"{c.name}: prepared")
        folder = Path(out) / c.name
        todo = [r for r in c.runs if not (resume and checkpoint.is_finished(folder / r.name, r))]
        resumed = {r.name: step for r in todo
                   if resume and (step := checkpoint.resumable(folder / r.name, r)) is not None}
        summaries = []
        for group in batches(todo, resumed):
            with jax.enable_x64(group[0].config.train.dtype == "float64"):
                if mine := share(group):
                    summaries += train_batch(Batch.of(mine, devices, split_batch), folder,
                                             progress or Quiet(), resume=group[0].name in resumed)
        barrier(f"{c.name}: trained")  # the leader holds the lock until every process is done
    return folder, summaries


def share(group: list[Run]) -> list[Run]:
    """This process's runs of a batch: all of them, or in a multi-process run (`jax.distributed`)
    every P-th, so that P processes train a sweep's runs side by side, each on its own devices."""
    return group[jax.process_index()::jax.process_count()]


def barrier(name: str) -> None:
    """Wait until every process of a multi-process run has come here."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
