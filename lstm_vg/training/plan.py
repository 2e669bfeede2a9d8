"""Which runs train together, on which devices, and whether they fit: the plan of a config.

Runs whose configs differ only in seed, learning rate or initialisation options share one
`Trainer` and train together along a stacked runs axis (`batch_key`); each such `Batch` is split
over the devices (`layout`) and checked against their memory before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from functools import cache, cached_property

import jax

from lstm_vg import config
from lstm_vg.config import Config, Run
from lstm_vg.core import autodiff, batched, train, zoo
from lstm_vg.errors import UserError
from lstm_vg.training import usercells


def batch_key(run: Run) -> Config:
    """What must be equal for runs to train in one batch."""
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


def layout(runs: int, batch: int, devices: list | None, split_batch: bool) -> tuple[list, int]:
    """(devices to use, batch shards): the runs split over as many devices as there are runs;
    with `split_batch`, spare devices split each run's training batch (when it divides)."""
    groups = min(len(devices or ()), runs)
    shards = len(devices) // groups if split_batch and groups else 1
    while batch % shards:
        shards -= 1
    return (devices or [])[: groups * shards], shards


BUILT_IN_OPTIONS = ("forget_bias", "recurrent_init", "scale", "forget_gate", "chrono")
LSTM_ONLY = ("forget_bias", "forget_gate", "chrono")


def make_cell(c: Config, task):
    """The run's cell: a built-in one (`zoo`), or a researcher's (`usercells.load`), made with
    model.options and checked against the protocol for this task's input size. An option the
    cell does not take is a UserError."""
    where, m, defaults = c.source or c.name, c.model, config.ModelConfig()
    given = [name for name in BUILT_IN_OPTIONS if getattr(m, name) != getattr(defaults, name)]
    fast = m.cell in zoo.CELLS
    takes = BUILT_IN_OPTIONS if m.cell == "lstm" else ("recurrent_init", "scale") if fast else ()
    for name in (name for name in given if name not in takes):
        if fast:
            raise UserError(f"{where}: model.{name}: only the LSTM takes it (it sets the forget "
                            f"gate); {m.cell!r} has none")
        raise UserError(f"{where}: model.{name}: {m.cell} does not take it; its options come from "
                        f"model.options (docs/cells.md)")
    if m.cell in zoo.CELLS:
        if m.options:
            raise UserError(f"{where}: model.options: the built-in cell {m.cell!r} takes no "
                            f"options; its own are model.{', model.'.join(takes)}")
        return zoo.get(m.cell, forget_gate=m.forget_gate)
    if m.cell in zoo.CLASSES:
        return made(m.cell, m.options, task.sequence_length, where)
    cell = usercells.load(m.cell, m.options, c.folder, where)
    usercells.check(cell, task.input_size, m.hidden, c.train.dtype)
    return cell


def sources(c: Config) -> dict:
    """sha256 of what a run's results depend on besides its config, as meta.json records them: a
    researcher's cell file or module (`cell_source`) and the pixels task's data set
    (`task_data`); None where the run has none."""
    where, m = c.source or c.name, c.model
    user = m.cell not in zoo.NAMES
    cell = usercells.load(m.cell, m.options, c.folder, where).source["sha256"] if user else None
    data = config.make_task(c.task, where, c.folder).sha256 if c.task.name == "pixels" else None
    return {"cell_source": cell, "task_data": data}


@cache
def made(name: str, options: tuple, horizon: int, where: str):
    """A built-in protocol-path cell with its model.options and the task's T' (one object per
    name, options and T', so that runs which share them train in one batch)."""
    kwargs = config.plain(options)
    try:
        return zoo.make(name, task_length=horizon, **kwargs)
    except (TypeError, ValueError) as error:
        raise UserError(f"{where}: model.options {kwargs}: {name}: {error}") from None


def make_trainer(c: Config, batch_shards: int = 1) -> train.Trainer:
    """The Trainer of a run's config (`batch_shards`: see `layout`)."""
    task = config.make_task(c.task, c.source or c.name, c.folder)
    cell = make_cell(c, task)
    if c.train.remat and not autodiff.has_fast_path(cell):
        raise UserError(f"{c.source or c.name}: train.remat: only cells with a hand-written backward "
                        f"pass ({', '.join(zoo.CELLS)}) recompute time blocks; {c.model.cell} has none")
    return train.Trainer(
        cell=cell,
        task=task,
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
        diagnostics=c.log.diagnostics,
        lyapunov_exponents=c.log.lyapunov_exponents,
        connectivity_examples=c.log.connectivity_examples,
    )


def cell_options(c: Config) -> dict:
    """The fast-path cells' initialisation options, which may differ between the runs of one
    batch (any other cell takes its options when it is made: none here)."""
    m = c.model
    if m.cell not in zoo.CELLS:
        return {}
    return {"recurrent_init": m.recurrent_init, "scale": m.scale, "forget_bias": m.forget_bias,
            "chrono": m.chrono}


def device_memory_bytes(device) -> int:
    """What one device can hold: an accelerator's memory limit, or on a CPU the machine's RAM."""
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass(frozen=True)
class Batch:
    """Runs that train together, the devices they are split over and each run's batch shards."""

    runs: tuple[Run, ...]
    devices: tuple  # empty: JAX's default device
    shards: int

    @classmethod
    def of(cls, runs: list[Run], devices: list | None = None, split_batch: bool = False) -> Batch:
        """`runs` laid out over `devices` (see `layout`)."""
        used, shards = layout(len(runs), runs[0].config.train.batch, devices, split_batch)
        return cls(tuple(runs), tuple(used), shards)

    @property
    def config(self) -> Config:
        return self.runs[0].config

    @property
    def label(self) -> str:
        c = self.config
        return f"{c.model.cell} · {c.task.name} T={self.trainer.task.length} · {len(self.runs)} run(s)"

    @cached_property
    def trainer(self) -> train.Trainer:
        return make_trainer(self.config, self.shards)

    @property
    def sharding(self):
        """The runs axis over the devices (None on one device; see `batched.runs_sharding`)."""
        return batched.runs_sharding(self.devices, self.shards) if len(self.devices) > 1 else None

    def fresh_states(self) -> train.TrainState:
        """Every run's initial state, stacked along the runs axis."""
        return batched.stack([self.trainer.init_state(r.seed, r.config.train.lr, **cell_options(r.config))
                              for r in self.runs])

    def place(self, states: train.TrainState) -> train.TrainState:
        """Stacked states onto the devices, padded to a whole number of runs per device group."""
        if self.sharding is None:
            return states
        return jax.device_put(batched.pad_runs(states, len(self.devices) // self.shards), self.sharding)

    def compile(self, vectorize: bool | None = None):
        """(chunk, evaluate) over the runs axis, jit-compiled once each (`batched.compile_batched`)."""
        return batched.compile_batched(self.trainer, self.sharding, vectorize)

    def memory(self) -> dict:
        """{"gib": estimated peak memory of one device, "limit_gib": what it holds, "device"}: on
        a CPU the runs of a device train one after another, elsewhere they are vmapped together."""
        device = (self.devices or jax.devices())[0]
        groups = max(len(self.devices) // self.shards, 1)
        together = 1 if device.platform == "cpu" else -(-len(self.runs) // groups)
        need = self.trainer.memory_bytes()
        # the task's data set (pixels' images) lies once on each device, shared by its runs
        total = together * (need["parameters"] + max(need["training"], need["evaluation"]))
        total += self.trainer.data_bytes()
        return {"gib": total / 2**30, "limit_gib": device_memory_bytes(device) / 2**30,
                "device": device, "together": together, "need": need}


def plan(c: Config, devices: list | None = None, split_batch: bool = False) -> list[Batch]:
    """The batches the config's runs train in; a UserError, before anything is compiled, for a
    batch that cannot fit in its device's memory (`train.Trainer.memory_bytes`)."""
    planned = [Batch.of(group, devices, split_batch) for group in batches(list(c.runs))]
    for batch in planned:
        check_memory(batch, c.source or c.name)
    return planned


def check_memory(batch: Batch, where: str) -> None:
    memory = batch.memory()
    if memory["gib"] <= memory["limit_gib"]:
        return
    gib = {k: f"{v / 2**30:.1f}" for k, v in memory["need"].items()}
    knob = "task.pad" if batch.config.task.name == "pixels" else "task.length"  # what sets T'
    raise UserError(
        f"{where}: {batch.label} needs about {memory['gib']:.1f} GiB ({memory['together']} run(s) "
        f"at once; per run: parameters {gib['parameters']}, training {gib['training']}, evaluation "
        f"{gib['evaluation']}), more than the {memory['limit_gib']:.1f} GiB of this "
        f"{memory['device'].platform} device; lower {knob}, train.batch, model.hidden or "
        f"log.eval_batch, or set train.remat"
    )
