"""Experiment configs: YAML → validated, frozen dataclasses → one `Run` per grid point × seed.

```yaml
name: adding                       # results go to <out>/<name>/<run>/ (default: the file's stem)
task: {name: adding, length: 100}  # threshold: solved criterion, default per task; variant
model: {cell: lstm, hidden: 128, forget_bias: 1.0, recurrent_init: orthogonal, scale: 1.0,
        forget_gate: true, chrono: null}
train: {steps: 2000, batch: 64, optimizer: adam, lr: 1.0e-3, clip: 1.0, chunk: 100, unroll: 1}
log: {every: 100, eval_batch: 1024, probe_batch: 64}
seeds: 2                           # or a list: [0, 3, 7]
sweep: {model.cell: [rnn, lstm]}   # grid over any leaf key; × seeds
```

Every user mistake raises `UserError` with one line: "<file>: <key>: <problem>; <what is allowed>".
Nothing here imports JAX until a config is validated: the cell, task and optimizer names come
from the registries of `lstm_vg.core`, asked only then (the analysis side reads configs too).
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import math
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path

from lstm_vg.errors import UserError
from lstm_vg.validate import (
    apply_override,
    check_value,
    folder_name,
    option,
    read_yaml,
    suggestion,
    type_name,
)


def registry(module: str, name: str):
    """The allowed values of a field: the names of a registry of `lstm_vg.core.<module>`, which
    is imported only when a value is checked."""
    return lambda: tuple(getattr(importlib.import_module(f"lstm_vg.core.{module}"), name))


@dataclass(frozen=True)
class TaskConfig:
    name: str = option("adding", str, choices=registry("tasks", "TASKS"))
    length: int = option(100, int, low=2)
    threshold: float | None = option(None, float, optional=True)
    variant: str = option("standard", str, choices=registry("tasks", "VARIANT_NAMES"))
    # pixels only: pixel order, blank steps after the image, IDX folder (default: packaged digits)
    order: str = option("sequential", str, choices=registry("tasks", "ORDERS"))
    pad: int = option(0, int, low=0)
    data: str | None = option(None, str, optional=True)


@dataclass(frozen=True)
class ModelConfig:
    # a built-in cell, or a researcher's: "my_cells.py:MinimalRNN" (relative to the config file)
    # or "package.module:Name", made with `options` as keyword arguments (docs/cells.md)
    cell: str = option("lstm", str, choices=registry("zoo", "NAMES"), or_code=True)
    options: tuple = option((), dict)
    hidden: int = option(128, int, low=1)
    forget_bias: float = option(1.0, float)  # LSTM only
    recurrent_init: str = option("orthogonal", str, choices=registry("cells", "RECURRENT_INITS"))
    scale: float = option(1.0, float, low=0, low_open=True)
    forget_gate: bool = option(True, bool)  # LSTM only; false: f ≡ 1 (the 1997 LSTM)
    chrono: int | None = option(None, int, low=3, optional=True)  # LSTM only; T_max of chrono init


@dataclass(frozen=True)
class TrainConfig:
    steps: int = option(2000, int, low=1, high=2**31 - 1)  # the step counter is int32
    batch: int = option(64, int, low=1)
    optimizer: str = option("adam", str, choices=registry("train", "OPTIMIZERS"))
    lr: float = option(1e-3, float, low=0, low_open=True)
    momentum: float = option(0.9, float, low=0, high=1, high_open=True)
    clip: float = option(1.0, float, low=0)
    chunk: int | None = option(None, int, low=1, optional=True)  # default: log.every
    unroll: int = option(1, int, low=1)
    remat: int = option(0, int, low=0)  # > 0: keep every remat-th state, recompute the rest
    dtype: str = option("float32", str, choices=("float32", "float64"))


@dataclass(frozen=True)
class LogConfig:
    every: int = option(100, int, low=1)
    eval_batch: int = option(1024, int, low=1)
    probe_batch: int = option(64, int, low=1)
    # what `lstm_vg.core.dynamics` measures on the probe batch at every log ([] for none)
    diagnostics: tuple = option(("lyapunov", "recurrent_matrix", "connectivity", "gates"), list,
                                choices=registry("dynamics", "DIAGNOSTICS"))
    lyapunov_exponents: int = option(8, int, low=1)  # the top k exponents
    connectivity_examples: int = option(4, int, low=0)  # probe sequences stored with their inputs


SECTIONS = {"task": TaskConfig, "model": ModelConfig, "train": TrainConfig, "log": LogConfig}
TOP_LEVEL = ("name", *SECTIONS, "seeds", "sweep")


@dataclass(frozen=True)
class Config:
    name: str
    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    log: LogConfig = LogConfig()
    seeds: tuple[int, ...] = (0,)
    sweep: tuple[tuple[str, tuple], ...] = ()  # ((dotted key, values), ...) in file order
    source: str = field(default="", compare=False)  # the file it came from, for messages
    folder: str = field(default=".", compare=False)  # what a model.cell file path is relative to

    @property
    def chunk_steps(self) -> int:
        return self.train.chunk or self.log.every

    def replace(self, key: str, value) -> Config:
        """A copy with the leaf at dotted `key` (e.g. "model.cell") set to `value`."""
        section, leaf = key.split(".")
        return dataclasses.replace(
            self, **{section: dataclasses.replace(getattr(self, section), **{leaf: value})}
        )

    @cached_property
    def runs(self) -> tuple[Run, ...]:
        """The sweep grid (in file order) × seeds, one `Run` each; expanded once per config."""
        return tuple(expand(self))

    def to_dict(self) -> dict:
        """Plain mapping, loadable again by `from_mapping`."""
        out = {"name": self.name}
        out |= {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}
        out["model"]["options"] = plain(self.model.options)
        out["log"]["diagnostics"] = list(self.log.diagnostics)
        out["seeds"] = list(self.seeds)
        if self.sweep:
            out["sweep"] = {key: list(values) for key, values in self.sweep}
        return out


@dataclass(frozen=True)
class Run:
    """One training run: a grid point of the sweep and a seed."""

    name: str  # e.g. "cell=lstm,seed=0": its folder under <out>/<config name>/
    config: Config  # sweep applied, seeds = (seed,)
    seed: int
    point: dict  # the swept values, {dotted key: value}


# ---- validation -------------------------------------------------------------------------------


def leaf_rules(key: str, source: str):
    """The rules of the leaf field at dotted `key`, or UserError (sweeps and --set use this)."""
    section, _, leaf = key.partition(".")
    if section not in SECTIONS or not leaf or "." in leaf:
        leaves = [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in fields(cls)]
        raise UserError(f"{source}: {key}: not a config key; {suggestion(key, leaves)}")
    names = {f.name: f.metadata for f in fields(SECTIONS[section])}
    if leaf not in names:
        raise UserError(f"{source}: {key}: unknown key; {suggestion(leaf, names)}")
    return names[leaf]


def parse_section(cls, raw, source: str, section: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{source}: {section}: expected a mapping, got {type_name(raw)}")
    known = {f.name: f.metadata for f in fields(cls)}
    for key in raw:
        if key not in known:
            raise UserError(f"{source}: {section}.{key}: unknown key; {suggestion(str(key), known)}")
    return cls(**{k: check_value(known[k], v, f"{source}: {section}.{k}") for k, v in raw.items()})


MAX_RUNS = 10_000  # runs in one config (sweep grid × seeds): more is surely a typo
MAX_SEED = 2**32 - 1


def parse_seeds(raw, source: str) -> tuple[int, ...]:
    where = f"{source}: seeds"
    if isinstance(raw, int) and not isinstance(raw, bool):
        if not 1 <= raw <= MAX_RUNS:
            raise UserError(f"{where}: must be a count from 1 to {MAX_RUNS} or a list of seeds, got {raw}")
        return tuple(range(raw))
    if isinstance(raw, list) and raw:
        rules = option(0, int, low=0, high=MAX_SEED).metadata
        seeds = tuple(check_value(rules, s, f"{where}[{i}]") for i, s in enumerate(raw))
        if len(set(seeds)) != len(seeds):
            raise UserError(f"{where}: seeds must be distinct, got {list(seeds)}")
        return seeds
    raise UserError(f"{where}: expected a count ≥ 1 or a non-empty list of seeds, got {raw!r}")


def parse_sweep(raw, source: str) -> tuple[tuple[str, tuple], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise UserError(f"{source}: sweep: expected a mapping of key → list of values")
    sweep = []
    for key, values in raw.items():
        rules = leaf_rules(str(key), f"{source}: sweep")
        where = f"{source}: sweep.{key}"
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: expected a non-empty list of values, got {values!r}")
        checked = tuple(check_value(rules, v, f"{where}[{i}]") for i, v in enumerate(values))
        if len(set(checked)) != len(checked):
            raise UserError(f"{where}: values must be distinct, got {list(checked)}")
        sweep.append((str(key), checked))
    return tuple(sweep)


def check_schedule(config: Config, where: str) -> None:
    """Logging happens between compiled chunks, so chunk | log.every | train.steps."""
    chunk, every, steps = config.chunk_steps, config.log.every, config.train.steps
    if every % chunk:
        raise UserError(f"{where}: train.chunk ({chunk}) must divide log.every ({every})")
    if steps % every:
        raise UserError(
            f"{where}: train.steps ({steps}) must be a multiple of log.every ({every}); "
            f"change one (e.g. --set log.every={math.gcd(steps, every)})"
        )


def refuse_other_keys(task: TaskConfig, where: str) -> None:
    """A UserError for a task key, changed from its default, that the task does not take."""
    pixels = task.name == "pixels"
    for key in ("length", "variant") if pixels else ("order", "pad", "data"):
        if getattr(task, key) != getattr(TaskConfig, key):
            raise UserError(f"{where}: task.{key}: " + (
                "pixels does not take it; its length is the image's pixel count + task.pad" if pixels
                else f"only the pixels task takes it; {task.name} takes name, length, threshold, variant"))


def make_task(task: TaskConfig, where: str, folder: str = "."):
    """The `lstm_vg.core.tasks` Task the section describes (pixels: `datasets.pixels_task`), or a
    UserError naming `where` when the task's own rules refuse it (a variant may need a longer T)."""
    from lstm_vg import datasets
    from lstm_vg.core import tasks

    refuse_other_keys(task, where)
    if task.name == "pixels":
        return datasets.pixels_task(task, folder, where)
    try:
        return tasks.make(task.name, task.length, task.threshold, task.variant)
    except KeyError as error:
        raise UserError(f"{where}: task.variant: {error.args[0]}") from None
    except ValueError as error:
        raise UserError(f"{where}: task.length: {error}") from None


def plain(options: tuple) -> dict:
    """model.options as written: {name: value}, lists as lists."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in options}


def from_mapping(raw, source: str, default_name: str = "experiment", folder: str = ".") -> Config:
    """Validate a parsed YAML mapping; `source` names the file in error messages, `folder` is
    where a `model.cell` file path is looked for."""
    if not isinstance(raw, dict):
        raise UserError(
            f"{source}: expected a mapping with keys {', '.join(TOP_LEVEL)}, got {type_name(raw)}"
        )
    for key in raw:
        if key not in TOP_LEVEL:
            raise UserError(f"{source}: {key}: unknown key; {suggestion(str(key), TOP_LEVEL)}")
    name = folder_name(raw.get("name", default_name), source)
    config = Config(
        name=name,
        **{s: parse_section(cls, raw.get(s), source, s) for s, cls in SECTIONS.items()},
        seeds=parse_seeds(raw.get("seeds", 1), source),
        sweep=parse_sweep(raw.get("sweep"), source),
        source=source,
        folder=folder,
    )
    count = len(config.seeds) * math.prod(len(values) for _, values in config.sweep)
    if count > MAX_RUNS:
        raise UserError(f"{source}: sweep × seeds: {count} runs, more than the {MAX_RUNS} allowed; "
                        f"split the sweep over several configs")
    for run in config.runs:
        where = f"{source}" + (f" (run {run.name})" if config.sweep else "")
        check_schedule(run.config, where)
        make_task(run.config.task, where, folder)
    return config


def with_defaults(raw: dict, source: str) -> dict:
    """A config mapping as written (e.g. an old config.yaml) with every section's missing keys
    at their defaults, as `to_dict` writes them; its values are not checked (no JAX), only that
    each section is a mapping."""
    out = dict(raw)
    for name, cls in SECTIONS.items():
        section = raw.get(name)
        if not isinstance(section, (dict, type(None))):
            raise UserError(f"{source}: {name}: expected a mapping, got {type_name(section)}")
        defaults = {f.name: plain(f.default) if f.name == "options" else
                    list(f.default) if isinstance(f.default, tuple) else f.default for f in fields(cls)}
        out[name] = defaults | (section or {})
    return out


# ---- files and overrides -------------------------------------------------------------------


def load(path: str | Path, overrides=(), seeds: int | None = None, steps: int | None = None) -> Config:
    """Read and validate a config file, after `--set` overrides and the --seeds/--steps shortcuts."""
    path = Path(path)
    raw = read_yaml(path)
    if raw is None:  # 0 bytes or only comments: surely not what the user meant to train
        raise UserError(f"{path}: the file is empty; a config needs at least a task or model "
                        f"section (see configs/adding.yaml)")
    if isinstance(raw, dict):
        for assignment in overrides:
            raw = apply_override(raw, assignment, TOP_LEVEL)
        if seeds is not None:
            raw["seeds"] = seeds
        if steps is not None:
            raw = apply_override(raw, f"train.steps={steps}", TOP_LEVEL)
    return from_mapping(raw, str(path), default_name=path.stem, folder=str(path.parent))


# ---- sweep expansion -------------------------------------------------------------------------


def run_name(point: dict, seed: int) -> str:
    leaves = [key.split(".")[-1] for key in point]
    unique = len(set(leaves)) == len(leaves)
    parts = [f"{leaf if unique else key}={value}"
             for (key, value), leaf in zip(point.items(), leaves, strict=True)]
    return ",".join([*parts, f"seed={seed}"])


def expand(config: Config) -> list[Run]:
    """The sweep grid (in file order) × seeds, one `Run` each."""
    keys = [key for key, _ in config.sweep]
    runs = []
    for values in itertools.product(*(values for _, values in config.sweep)):
        point = dict(zip(keys, values, strict=True))
        point_config = config
        for key, value in point.items():
            point_config = point_config.replace(key, value)
        for seed in config.seeds:
            single = dataclasses.replace(point_config, seeds=(seed,), sweep=())
            runs.append(Run(run_name(point, seed), single, seed, point))
    return runs

