"""The host side of training: batch runs, call the compiled chunks, log, write, report progress.

The device does all the numerics (`train.Trainer`); between chunks this loop only moves small
metric arrays to the host and writes them, so nothing already measured is lost if it stops.

Runs whose configs differ only in seed, learning rate or initialisation options share one
`Trainer` and train together along a vmapped runs axis.

Logged-row rules (documented in docs/results-format.md): at step 0 and every `log.every` steps,
eval loss/accuracy and the per-timestep gradient norms are measured on the run's fixed eval and
probe batches with the current params. `train_loss` and `grad_norm` are the means over the
training batches since the previous logged step (at step 0, where no training has happened yet,
they are measured on the probe batch).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Protocol

import jax
import numpy as np
from jax.experimental import multihost_utils

from lstm_vg import cells, checkpoint, config, runs, tasks, train
from lstm_vg.config import Config, Run
from lstm_vg.errors import UserError


class Progress(Protocol):
    def start(self, label: str, total_steps: int, runs: int) -> None: ...
    def advance(self, step: int, mean_train_loss: float) -> None: ...
    def stop(self) -> None: ...


class Quiet:
    def start(self, label, total_steps, runs): pass
    def advance(self, step, mean_train_loss): pass
    def stop(self): pass


def batch_key(run: Run) -> Config:
    """What must be equal for runs to train in one vmapped batch."""
    c = run.config
    model = dataclasses.replace(c.model, forget_bias=0.0, recurrent_init="", scale=1.0, chrono=None)
    return dataclasses.replace(c, model=model, train=dataclasses.replace(c.train, lr=1.0), seeds=())


def batches(all_runs: list[Run], resumed: dict[str, int] | None = None) -> list[list[Run]]:
    """Runs that can train together: same `batch_key`, and resumed at the same step (`resumed`:
    run name → step) or fresh."""
    groups: dict[tuple, list[Run]] = {}
    for run in all_runs:
        groups.setdefault((batch_key(run), (resumed or {}).get(run.name)), []).append(run)
    return list(groups.values())


def resumable(folder: Path, run: Run) -> int | None:
    """The step an unfinished run can resume from: its checkpoint's, when its folder holds
    this run's config and logs; else None (it starts again)."""
    logs = all((folder / name).is_file() for name in ("metrics.csv", "gradients.npz"))
    return checkpoint.saved_step(folder) if logs and runs.holds_run(folder, run) else None


def device_memory_bytes(device) -> int:
    """What one device can hold: an accelerator's memory limit, or on a CPU the machine's RAM."""
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def plan(c: Config, devices: list | None = None, split_batch: bool = False) -> list[dict]:
    """The batches the config's runs train in, each {"batch": label, "runs": names, "gib":
    estimated peak memory of a device, "limit_gib": what it holds}; a UserError, before anything
    is compiled, for a batch that cannot fit (`train.Trainer.memory_bytes`; on CPU the runs of
    a device train one after another, elsewhere they are vmapped together)."""
    batches_planned = []
    for group in batches(config.expand(c)):
        first = group[0].config
        used, shards = layout(len(group), first.train.batch, devices, split_batch)
        device = (used or jax.devices())[0]
        together = 1 if device.platform == "cpu" else -(-len(group) // max(len(used) // shards, 1))
        need = make_trainer(first, shards).memory_bytes()
        total = together * (need["parameters"] + max(need["training"], need["evaluation"]))
        limit = device_memory_bytes(device)
        if total > limit:
            gib = {k: f"{v / 2**30:.1f}" for k, v in need.items()}
            raise UserError(
                f"{c.source or c.name}: {batch_label(group)} needs about {total / 2**30:.1f} GiB "
                f"({together} run(s) at once; per run: parameters {gib['parameters']}, training "
                f"{gib['training']}, evaluation {gib['evaluation']}), more than the "
                f"{limit / 2**30:.1f} GiB of this {device.platform} device; lower task.length, "
                f"train.batch, model.hidden or log.eval_batch, or set train.remat"
            )
        batches_planned.append({"batch": batch_label(group), "runs": [r.name for r in group],
                                "gib": total / 2**30, "limit_gib": limit / 2**30})
    return batches_planned


def make_trainer(c: Config, batch_shards: int = 1) -> train.Trainer:
    return train.Trainer(
        cell=cells.get(c.model.cell, forget_gate=c.model.forget_gate),
        task=tasks.make(c.task.name, c.task.length, c.task.threshold, c.task.variant),
        hidden=c.model.hidden,
        batch=c.train.batch,
        chunk_steps=c.chunk_steps,
        eval_batch=c.log.eval_batch,
        probe_batch=c.log.probe_batch,
        optimizer=c.train.optimizer,
        clip=c.train.clip,
        momentum=c.train.momentum,
        scan_unroll=c.train.unroll,
        remat=c.train.remat,
        batch_shards=batch_shards,
        dtype=c.train.dtype,
    )


def cell_options(c: Config) -> dict:
    m = c.model
    return {"recurrent_init": m.recurrent_init, "scale": m.scale, "forget_bias": m.forget_bias,
            "chrono": m.chrono}


def batch_label(group: list[Run]) -> str:
    c = group[0].config
    return f"{c.model.cell} · {c.task.name} T={c.task.length} · {len(group)} run(s)"


class RunLog:
    """One run's logged rows and gradient profiles, rewritten to its folder at every log."""

    def __init__(self, run: Run, folder: Path, meta: dict, resume_at: int | None = None):
        """A new run's log, or with `resume_at` the log of a run resumed at that step."""
        self.run, self.meta = run, meta
        self.writer = runs.RunFolder(folder / run.name, run, resume=resume_at is not None)
        self.writer.write_meta(meta)
        self.rows: list[dict] = []
        self.norms: dict[str, list[np.ndarray]] = {}
        if resume_at is not None:
            self.rows, self.norms = self.writer.read_logs(resume_at)
        self.diverged_at: int | None = None

    @property
    def last_step(self) -> int | None:
        return self.rows[-1]["step"] if self.rows else None

    def append(self, row: dict, profiles: dict[str, np.ndarray], diverged_at: int = -1) -> None:
        """Log a row; `diverged_at` ≥ 0: the step at which training froze the run (see
        `train.Trainer.step`). A non-finite eval loss marks the run too."""
        if self.diverged_at is None and diverged_at >= 0:
            self.diverged_at = diverged_at
        if self.diverged_at is None and not np.isfinite(row["eval_loss"]):
            self.diverged_at = row["step"]
        self.rows.append(row)
        for name, profile in profiles.items():
            self.norms.setdefault(name, []).append(profile)
        self.writer.write_logs(self.rows, self.norms)

    def finish(self, task, status: str, params: dict | None, wall_seconds: float) -> dict:
        status = "diverged" if self.diverged_at is not None else status
        self.writer.write_logs(self.rows, self.norms)  # again: an interrupt may have cut the last
        if params is not None:
            self.writer.write_params(params)
        if status != "interrupted":  # a finished run needs no checkpoint
            (self.writer.folder / checkpoint.FILE).unlink(missing_ok=True)
        summary = runs.summarize(task, self.run, self.rows, self.norms, status, self.diverged_at,
                                 wall_seconds)
        self.writer.write_summary(summary)
        self.writer.write_meta(self.meta | {"finished": runs.now()})
        return summary


def window_mean(window: list[dict], name: str) -> np.ndarray:
    """Per run, the mean of a chunk metric over the window (chunks × K steps). math.fsum rounds
    once, so the number does not depend on how many runs share the batch (numpy's pairwise
    summation over a (chunks, runs, K) array groups the terms by its shape)."""
    values = np.stack([w[name] for w in window], axis=1).reshape(len(window[0][name]), -1)
    return np.array([math.fsum(v.tolist()) / v.size if np.isfinite(v).all() else np.mean(v)
                     for v in values])


def logged_rows(step: int, logged: dict, window: list[dict], wall_seconds: float, carry_names):
    """Per run (row, {"h_norms": (T',), …}) from a batched `evaluate` result and the chunk
    metrics since the previous log (their means; the probe batch's at step 0)."""
    if window:
        train_loss, grad_norm = window_mean(window, "loss"), window_mean(window, "grad_norm")
    else:
        train_loss, grad_norm = logged["probe_loss"], logged["probe_grad_norm"]
    for r in range(len(train_loss)):
        row = {
            "step": step,
            "train_loss": float(train_loss[r]),
            "eval_loss": float(logged["eval_loss"][r]),
            "eval_accuracy": float(logged["eval_accuracy"][r]),
            "grad_norm": float(grad_norm[r]),
            "wall_seconds": wall_seconds,
        }
        yield row, {f"{n}_norms": np.asarray(logged[f"{n}_norms"][r]) for n in carry_names}


def layout(runs: int, batch: int, devices: list | None, split_batch: bool) -> tuple[list, int]:
    """(devices to use, batch shards): the runs split over as many devices as there are runs;
    with `split_batch`, spare devices split each run's training batch (when it divides)."""
    groups = min(len(devices or ()), runs)
    shards = len(devices) // groups if split_batch and groups else 1
    while batch % shards:
        shards -= 1
    return (devices or [])[: groups * shards], shards


def starting_states(trainer: train.Trainer, group: list[Run], folder: Path, resume: bool):
    """(states, the step they are at, the chunk metrics since the last log): fresh runs, or
    with `resume` the runs' checkpoints (all at one step: see `run_experiment`)."""
    fresh = [trainer.init_state(r.seed, r.config.train.lr, **cell_options(r.config)) for r in group]
    if not resume:
        return train.stack(fresh), 0, []
    loaded = [checkpoint.load(folder / r.name, like) for r, like in zip(group, fresh)]
    states, windows = zip(*loaded)
    window = [{name: np.stack([w[i][name] for w in windows]) for name in checkpoint.WINDOW}
              for i in range(len(windows[0]))]
    return train.stack(list(states)), int(states[0].step), window


def train_batch(group: list[Run], folder: Path, progress: Progress, devices: list | None = None,
                split_batch: bool = False, resume: bool = False) -> list[dict]:
    """Train one batch of runs to the end (or an interrupt), split over `devices` (default:
    JAX's first device; see `layout`), from scratch or from their checkpoints (`resume`);
    returns their summaries. A checkpoint of every run is written after every chunk."""
    first = group[0].config
    used, shards = layout(len(group), first.train.batch, devices, split_batch)
    trainer = make_trainer(first, shards)
    states, start, window = starting_states(trainer, group, folder, resume)
    sharding = None
    if len(used) > 1:  # padded to a whole number of runs per device group
        sharding = train.runs_sharding(used, shards)
        states = jax.device_put(train.pad_runs(states, len(used) // shards), sharding)
    chunk, evaluate = train.compile_batched(trainer, sharding)
    device_kind, started = jax.devices()[0].device_kind, runs.now()
    logs = [RunLog(r, folder, runs.meta(r, len(group), device_kind, started, max(len(used), 1), shards),
                   resume_at=start if resume else None)
            for r in group]
    # wall_seconds goes on from where a resumed run's last log left it
    clock = time.perf_counter() - (logs[0].rows[-1]["wall_seconds"] if logs[0].rows else 0.0)

    def save_checkpoints() -> None:
        host = jax.device_get(states)
        for r, run_log in enumerate(logs):
            checkpoint.save(run_log.writer.folder, jax.tree.map(lambda a: a[r], host),
                            [{name: w[name][r] for name in checkpoint.WINDOW} for w in window])

    def log(step: int) -> None:
        logged = jax.device_get(evaluate(states))
        rows = logged_rows(step, logged, window, time.perf_counter() - clock, trainer.cell.carry_names)
        for r, (run_log, (row, profiles)) in enumerate(zip(logs, rows)):
            run_log.append(row, profiles, int(logged["diverged_at"][r]))
        window.clear()

    def finish(status: str) -> list[dict]:
        wall = time.perf_counter() - clock
        try:
            params = jax.device_get(states.params)
        except RuntimeError:  # interrupted while a chunk owned (had been donated) the state
            params = None
        return [run_log.finish(trainer.task, status,
                               None if params is None else jax.tree.map(lambda a: a[r], params), wall)
                for r, run_log in enumerate(logs)]

    progress.start(batch_label(group), first.train.steps, len(group))
    try:
        if start % first.log.every == 0 and logs[0].last_step != start:
            log(start)  # step 0, or a resumed run whose last log was cut off
        for step in range(start + first.chunk_steps, first.train.steps + 1, first.chunk_steps):
            states, metrics = chunk(states)
            metrics = jax.device_get(metrics)
            window.append(metrics)
            if step % first.log.every == 0:
                log(step)
            save_checkpoints()  # after the log: the saved window holds only unlogged chunks
            progress.advance(step, float(np.nanmean(metrics["loss"])))
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
    are split over `devices` (see `layout`). One process at a time writes a folder (`runs.lock`)."""
    plan(c, devices, split_batch)
    leader = jax.process_index() == 0
    with runs.lock(Path(out), c.name) if leader else contextlib.nullcontext():
        if leader:  # the others wait: with --overwrite the leader empties the folder first
            runs.prepare_experiment(Path(out), c.name, overwrite, resume)
        barrier(f"{c.name}: prepared")
        folder = Path(out) / c.name
        todo = [r for r in config.expand(c) if not (resume and runs.is_finished(folder / r.name, r))]
        resumed = {r.name: step for r in todo if resume and (step := resumable(folder / r.name, r)) is not None}
        summaries = []
        for group in batches(todo, resumed):
            with jax.enable_x64(group[0].config.train.dtype == "float64"):
                if mine := share(group):
                    summaries += train_batch(mine, folder, progress or Quiet(), devices, split_batch,
                                             resume=group[0].name in resumed)
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
