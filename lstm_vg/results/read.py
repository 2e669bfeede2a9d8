"""Reading a results folder back: the one reader of each file, for resuming and analysis alike.

The files and their fields are the contract in docs/results-format.md. A *run folder* is a folder
holding `summary.json` or `metrics.csv`; its parent is its *experiment folder*. A run without
`summary.json` is still being written (status "running"): each of its files is whole (they are
replaced atomically) but some may not exist yet. Missing files load as None; a file that exists
but cannot be read makes the whole run unreadable (`UserError` naming the file and the problem).
"""

from __future__ import annotations

import csv
import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_vg import config as config_schema
from lstm_vg import validate
from lstm_vg.errors import UserError
from lstm_vg.results import format as fmt

IDENTITY_KEYS = {"cell": "model.cell", "task": "task.name", "length": "task.length"}
SUMMARY_REQUIRED = ("status", "cell", "task", "length", "seed")


@dataclass(frozen=True)
class RunResult:
    """One run folder's files. `summary` is None while the run is being written; `metrics`
    ({column: (logs,)}) and `norms` ({"steps": (logs,), "h_norms": (logs, T'), ["c_norms"]})
    are None until their file exists; `config` is the nested config.yaml ({} if missing);
    `meta` is meta.json ({} if missing); `dynamics` is dynamics.npz ({"steps": (logs,),
    "lyapunov": (logs, k), …}; None when the run has none)."""

    folder: Path
    summary: dict | None
    config: dict
    metrics: dict[str, np.ndarray] | None
    norms: dict[str, np.ndarray] | None
    meta: dict
    dynamics: dict[str, np.ndarray] | None = None  # dynamics.npz; None for runs without it

    @property
    def status(self) -> str:
        return self.summary["status"] if self.summary else "running"

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def grad_profile(self) -> str:
        """The profile the gradient figures summarise: "h_norms", or the cell's recurrent state's
        (summary.json or meta.json `grad_profile`; older runs have neither: "h_norms")."""
        return (self.summary or {}).get("grad_profile") or self.meta.get("grad_profile") or "h_norms"

    def identity(self, field: str):
        """`cell`, `task`, `length` or `seed`, from summary.json or else config.yaml."""
        if self.summary is not None:
            return self.summary[field]
        if field == "seed":
            return (self.value("seeds") or [None])[0]  # a run's config holds its one seed
        if field == "length" and "task_data" in self.meta:  # pixels: T' = the image's pixels + pad
            return self.meta["task_data"]["pixels"] + (self.value("task.pad") or 0)
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
        """A summary field ("solved"), else a config value by dotted key ("task.length"): the
        summary's `sweep.<key>`, else config.yaml's; None if none has it."""
        summary = self.summary or {}
        for field in (key, f"sweep.{key}"):
            if field in summary:
                return summary[field]
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

    def task_field(self, name: str):
        """A field the task records at the start (meta.json) and the end (summary.json)."""
        return (self.summary or {}).get(name, self.meta.get(name))

    @property
    def baseline_loss(self) -> float | None:
        """The input-blind predictor's loss; None when the run has not recorded it yet."""
        return self.task_field("baseline_loss")

    def solved_criterion(self) -> tuple[str, str, float] | None:
        """(metric column, "<=" or ">=", threshold) of this run's task; None when unknown."""
        stored = [self.task_field(name) for name in fmt.CRITERION_FIELDS]
        if None not in stored:
            return tuple(stored)
        known = fmt.CRITERIA_BEFORE_STORED.get((self.task, self.value("task.variant") or "standard"))
        if known is None:
            return None
        metric, relation, threshold = known
        return metric, relation, float(self.value("task.threshold") or threshold)


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
        if any(marker in files for marker in fmt.RUN_MARKERS):
            found.append(Path(folder))
            subfolders[:] = []  # a run folder holds files only
    return sorted(found)


# ---- reading one run ---------------------------------------------------------------------------


def read_json(path: Path) -> dict | None:
    """A JSON object, or None when the file does not exist."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def read_summary(path: Path) -> dict | None:
    """summary.json, with the fields every reader relies on; None while the run is written."""
    data = read_json(path)
    if data is None:
        return None
    missing = [f for f in SUMMARY_REQUIRED if f not in data]
    if missing:
        raise UserError(f"{path}: missing field {missing[0]!r}")
    if data["status"] not in fmt.STATUSES:
        raise UserError(f"{path}: status {data['status']!r} is not one of {', '.join(fmt.STATUSES)}")
    return data


def read_yaml(path: Path) -> dict:
    """A YAML mapping ({} when the file does not exist)."""
    if not path.exists():
        return {}
    data = validate.read_yaml(path)
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
            missing = [f for f in fmt.METRIC_FIELDS if f not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path}: missing column {missing[0]!r}")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path}: unreadable ({error})") from None
    columns = {}
    for field in fmt.METRIC_FIELDS:
        try:
            columns[field] = np.array([float(row[field]) for row in rows], np.float64)
        except (TypeError, ValueError):
            raise UserError(f"{path}: column {field!r} holds a value that is not a number") from None
    columns["step"] = columns["step"].astype(np.int64)
    return columns


def read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """An .npz archive's named arrays; None when the file does not exist."""
    if not path.exists():
        return None
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):  # a bare .npy array
            raise ValueError("a single array, not an archive of named arrays")
        with archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise UserError(f"{path}: unreadable, truncated or not an .npz archive ({error})") from None


def read_dynamics(path: Path) -> dict[str, np.ndarray] | None:
    """dynamics.npz → {"steps": (logs,), and per diagnostic (logs, …) or, for the constant ones,
    one array} (docs/results-format.md); None when the file does not exist."""
    arrays = read_npz(path)
    if arrays is None:
        return None
    if "steps" not in arrays:
        raise UserError(f"{path}: missing array 'steps'")
    logs = arrays["steps"].shape[0]
    for name, array in arrays.items():
        if name not in fmt.DYNAMICS_CONSTANTS and (array.ndim == 0 or array.shape[0] != logs):
            raise UserError(f"{path}: {name} has shape {array.shape}, expected ({logs}, …)")
    return arrays


def read_norms(path: Path) -> dict[str, np.ndarray] | None:
    """gradients.npz → {"steps": (logs,), "h_norms": (logs, T'), ["c_norms": (logs, T')],
    ["h_reach": (logs, T'), …]}."""
    arrays = read_npz(path)
    if arrays is None:
        return None
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
    was written reads as its default (not as a swept key); {} when the file does not exist."""
    raw = read_yaml(path)
    return config_schema.with_defaults(raw, str(path)) if raw else raw


def load_run(folder: Path) -> RunResult:
    """A run folder's summary.json, config.yaml, metrics.csv, gradients.npz, meta.json and
    dynamics.npz."""
    summary = read_summary(folder / fmt.SUMMARY)
    config = read_config(folder / fmt.CONFIG)
    if summary is None and not config:
        raise UserError(f"{folder}: neither summary.json nor config.yaml; cannot tell what was trained")
    return RunResult(folder, summary, config, read_metrics(folder / fmt.METRICS),
                     read_norms(folder / fmt.NORMS), read_json(folder / fmt.META) or {},
                     read_dynamics(folder / fmt.DYNAMICS))
