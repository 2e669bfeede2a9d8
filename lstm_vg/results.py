"""Read results folders back: find the runs below a path, load their files, group them.

The files and their fields are the contract in docs/results-format.md. A *run folder* is a folder
holding `summary.json` or `metrics.csv`; its parent is its *experiment folder*. A run without
`summary.json` is still being written (status "running"): each of its files is whole (they are
replaced atomically) but some may not exist yet. Missing files load as None; a file that exists
but cannot be read makes the whole run unreadable (`UserError` naming the file and the problem).

Nothing here trains: the task registry only supplies defaults a file may leave out (the solved
threshold, the baseline of a run without a summary), and `runs.METRIC_FIELDS` the CSV columns.
"""

from __future__ import annotations

import csv
import json
import math
import os
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from lstm_vg import config as config_schema, tasks
from lstm_vg.errors import UserError
from lstm_vg.runs import METRIC_FIELDS, flatten

RUN_MARKERS = ("summary.json", "metrics.csv")
CELL_KEY = "model.cell"
IDENTITY_KEYS = {"cell": CELL_KEY, "task": "task.name", "length": "task.length"}
NOT_SWEPT = ("name", "seeds")  # config keys that differ between runs without being a sweep


@dataclass(frozen=True)
class RunResult:
    """One run folder's files. `summary` is None while the run is being written; `metrics`
    ({column: (logs,)}) and `norms` ({"steps": (logs,), "h_norms": (logs, T'), ["c_norms"]})
    are None until their file exists; `config` is the nested config.yaml ({} if missing)."""

    folder: Path
    summary: dict | None
    config: dict
    metrics: dict[str, np.ndarray] | None
    norms: dict[str, np.ndarray] | None

    @property
    def status(self) -> str:
        return self.summary["status"] if self.summary else "running"

    @property
    def name(self) -> str:
        return self.folder.name

    def identity(self, field: str):
        """`cell`, `task`, `length` or `seed`, from summary.json or else config.yaml."""
        if self.summary is not None:
            return self.summary[field]
        if field == "seed":
            return (self.value("seeds") or [None])[0]  # a run's config holds its one seed
        return self.value(IDENTITY_KEYS[field])

    @property
    def cell(self) -> str:
        return self.identity("cell")

    @property
    def task(self) -> str:
        return self.identity("task")

    @property
    def length(self) -> int:
        return self.identity("length")

    @property
    def seed(self) -> int:
        return self.identity("seed")

    def value(self, key: str):
        """A config value by dotted key ("task.length"): the summary's `sweep.<key>`, else config.yaml."""
        if self.summary is not None and f"sweep.{key}" in self.summary:
            return self.summary[f"sweep.{key}"]
        node = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    @property
    def total_steps(self) -> int | None:
        """train.steps of the config: where a finished run ends."""
        return self.value("train.steps")

    @property
    def baseline_loss(self) -> float | None:
        """The input-blind predictor's loss: summary.json's, else the task's formula."""
        if self.summary is not None:
            return self.summary.get("baseline_loss")
        task = self.task_instance()
        return None if task is None else task.baseline_loss

    def solved_criterion(self) -> tuple[str, str, float] | None:
        """(metric column, "≤"/"≥", threshold) of this run's task; None for an unknown task."""
        task = self.task_instance()
        if task is None:
            return None
        return task.solved_metric, task.solved_relation, float(task.threshold)

    def task_instance(self):
        """The run's task (with its variant and threshold); None when it cannot be made."""
        try:
            return tasks.make(self.task, self.length, self.value("task.threshold"),
                              self.value("task.variant") or "standard")
        except (KeyError, ValueError, TypeError):
            return None


@dataclass(frozen=True)
class Experiment:
    """The runs of one experiment folder and the config keys they were swept over."""

    folder: Path
    runs: tuple[RunResult, ...]
    swept_keys: tuple[str, ...]  # dotted keys, seed aside, e.g. ("model.cell", "task.length")

    @property
    def name(self) -> str:
        return self.folder.name

    def setting(self, run: RunResult) -> tuple[tuple[str, object], ...]:
        """The run's swept values other than the cell: runs of one setting compare cells."""
        return tuple((key, run.value(key)) for key in self.swept_keys if key != CELL_KEY)

    def settings(self) -> dict[tuple, list[RunResult]]:
        """Runs grouped by `setting`, in sorted order."""
        groups: dict[tuple, list[RunResult]] = {}
        for run in self.runs:
            groups.setdefault(self.setting(run), []).append(run)
        return dict(sorted(groups.items(), key=lambda item: [sort_key(v) for _, v in item[0]]))


# ---- finding runs ------------------------------------------------------------------------------


def find_run_folders(path: Path) -> list[Path]:
    """Every run folder at or below `path`, sorted; hidden folders are not searched."""
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if not path.is_dir():
        raise UserError(f"{path}: not a folder; give a run, an experiment folder or a results tree")
    found = []
    for folder, subfolders, files in os.walk(path):
        subfolders[:] = sorted(s for s in subfolders if not s.startswith("."))
        if any(marker in files for marker in RUN_MARKERS):
            found.append(Path(folder))
            subfolders[:] = []  # a run folder holds files only
    return sorted(found)


# ---- reading one run ---------------------------------------------------------------------------


def read_json(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, found {type(data).__name__}")
    missing = [f for f in ("status", "cell", "task", "length", "seed") if f not in data]
    if missing:
        raise UserError(f"{path}: missing field {missing[0]!r}")
    return data


def read_yaml(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path}: not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of config sections")
    return data


def read_metrics(path: Path) -> dict[str, np.ndarray] | None:
    """metrics.csv → {column: (logs,) float64}; `step` as int64."""
    if not path.exists():
        return None
    try:
        with open(path, newline="") as file:
            reader = csv.DictReader(file)
            missing = [f for f in METRIC_FIELDS if f not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path}: missing column {missing[0]!r}")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path}: unreadable ({error})") from None
    columns = {}
    for field in METRIC_FIELDS:
        try:
            columns[field] = np.array([float(row[field]) for row in rows], np.float64)
        except (TypeError, ValueError):
            raise UserError(f"{path}: column {field!r} holds a value that is not a number") from None
    columns["step"] = columns["step"].astype(np.int64)
    return columns


def read_norms(path: Path) -> dict[str, np.ndarray] | None:
    """gradients.npz → {"steps": (logs,), "h_norms": (logs, T'), ["c_norms": (logs, T')]}."""
    if not path.exists():
        return None
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):  # a bare .npy array
            raise ValueError("a single array, not an archive of named arrays")
        with archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise UserError(f"{path}: unreadable, truncated or not an .npz archive ({error})") from None
    for name in ("steps", "h_norms"):
        if name not in arrays:
            raise UserError(f"{path}: missing array {name!r}")
    logs = arrays["steps"].shape[0]
    for name in ("h_norms", "c_norms"):
        if name in arrays and (arrays[name].ndim != 2 or arrays[name].shape[0] != logs):
            raise UserError(f"{path}: {name} has shape {arrays[name].shape}, expected ({logs}, T')")
    return arrays


def read_config(path: Path) -> dict:
    """config.yaml with the schema's defaults filled in, so a key added to lstm-vg after the run
    was written reads as its default (not as a swept key); as written if the schema refuses it."""
    raw = read_yaml(path)
    try:
        return config_schema.from_mapping(raw, str(path)).to_dict() if raw else raw
    except UserError:
        return raw


def load_run(folder: Path) -> RunResult:
    """A run folder's summary.json, config.yaml, metrics.csv and gradients.npz."""
    summary = read_json(folder / "summary.json")
    config = read_config(folder / "config.yaml")
    if summary is None and not config:
        raise UserError(f"{folder}: neither summary.json nor config.yaml; cannot tell what was trained")
    return RunResult(folder, summary, config, read_metrics(folder / "metrics.csv"),
                     read_norms(folder / "gradients.npz"))


# ---- experiments -------------------------------------------------------------------------------


def swept_keys(runs: list[RunResult]) -> tuple[str, ...]:
    """Keys named `sweep.<key>` in any summary, and config keys whose values differ between runs
    (so runs still being written, without a summary, are placed too); the cell first."""
    declared = {key.removeprefix("sweep.") for r in runs if r.summary
                for key in r.summary if key.startswith("sweep.")}
    configs = [flatten(r.config, sep=".") for r in runs if r.config]
    keys = set().union(*(c.keys() for c in configs)) if configs else set()
    varying = {k for k in keys if k not in NOT_SWEPT and len({repr(c.get(k)) for c in configs}) > 1}
    return tuple(sorted(declared | varying, key=lambda k: (k != CELL_KEY, k)))


def sort_key(value) -> tuple:
    """Numbers in numeric order, before anything else in string order."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, math.inf, str(value))


def cell_order(cell: str) -> tuple:
    """The RNN first, then the LSTM, then any other cell by name."""
    known = ("rnn", "lstm")
    return (known.index(cell), "") if cell in known else (len(known), cell)


def by_cell(runs: list[RunResult]) -> dict[str, list[RunResult]]:
    """Runs grouped by cell, the RNN first."""
    groups: dict[str, list[RunResult]] = {}
    for run in sorted(runs, key=lambda r: cell_order(r.cell)):
        groups.setdefault(run.cell, []).append(run)
    return groups


def group_experiments(runs: list[RunResult]) -> list[Experiment]:
    """Runs grouped by experiment folder; within one, ordered by setting, cell and seed."""
    by_folder: dict[Path, list[RunResult]] = {}
    for run in runs:
        by_folder.setdefault(run.folder.parent, []).append(run)
    experiments = []
    for folder, members in sorted(by_folder.items()):
        keys = swept_keys(members)
        members.sort(key=lambda r: ([sort_key(r.value(k)) for k in keys if k != CELL_KEY],
                                    cell_order(r.cell), sort_key(r.seed)))
        experiments.append(Experiment(folder, tuple(members), keys))
    return experiments


def load(path: Path) -> tuple[list[Experiment], list[str]]:
    """The experiments below `path` and one warning line per run skipped as unreadable.

    Raises `UserError` when no run folder is found or none of them can be read.
    """
    folders = find_run_folders(Path(path))
    if not folders:
        raise UserError(f"{path}: no runs found (a run folder holds summary.json or metrics.csv)")
    runs, problems = [], []
    for folder in folders:
        try:
            runs.append(load_run(folder))
        except UserError as error:
            problems.append(str(error))
    if not runs:
        more = f" (and {len(problems) - 1} more unreadable runs)" if len(problems) > 1 else ""
        raise UserError(f"{problems[0]}{more}")
    warnings = [f"skipped a run: {problem}" for problem in problems]
    return group_experiments(runs), warnings


def status_counts(runs: list[RunResult]) -> str:
    """"done" when all are done, else e.g. "done 2, running 1"."""
    counts = Counter(r.status for r in runs)
    if set(counts) == {"done"}:
        return "done"
    return ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
