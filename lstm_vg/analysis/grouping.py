"""The runs below a path, grouped as the analysis reads them: by experiment folder, by setting
(the swept values other than the cell) and by cell."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lstm_vg.errors import UserError
from lstm_vg.results.format import flatten
from lstm_vg.results.read import RunResult, find_run_folders, load_run

CELL_KEY = "model.cell"
NOT_SWEPT = ("name", "seeds")  # config keys that differ between runs without being a sweep


@dataclass(frozen=True)
class ExperimentResults:
    """The runs of one experiment folder and the config keys they were swept over (not the
    experiment file of `lstm_vg.experiments`, whose configs write such folders)."""

    folder: Path
    runs: tuple[RunResult, ...]
    swept_keys: tuple[str, ...]  # dotted keys, seed aside, e.g. ("model.cell", "task.length")

    @property
    def name(self) -> str:
        return self.folder.name

    def setting(self, run: RunResult) -> tuple[tuple[str, object], ...]:
        """The run's swept values other than the cell: runs of one setting compare cells. A list
        value (e.g. `log.diagnostics`) as a tuple, so that settings can be grouped by."""
        return tuple((key, hashable(run.value(key))) for key in self.swept_keys if key != CELL_KEY)

    def settings(self) -> dict[tuple, list[RunResult]]:
        """Runs grouped by `setting`, in sorted order."""
        groups: dict[tuple, list[RunResult]] = {}
        for run in self.runs:
            groups.setdefault(self.setting(run), []).append(run)
        return dict(sorted(groups.items(), key=lambda item: [sort_key(v) for _, v in item[0]]))



def hashable(value):
    """A config value as a dict key: lists (and lists in lists) as tuples."""
    return tuple(hashable(v) for v in value) if isinstance(value, list) else value


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


def group_experiments(runs: list[RunResult]) -> list[ExperimentResults]:
    """Runs grouped by experiment folder; within one, ordered by setting, cell and seed."""
    by_folder: dict[Path, list[RunResult]] = {}
    for run in runs:
        by_folder.setdefault(run.folder.parent, []).append(run)
    experiments = []
    for folder, members in sorted(by_folder.items()):
        keys = swept_keys(members)
        members.sort(key=lambda r: ([sort_key(r.value(k)) for k in keys if k != CELL_KEY],
                                    cell_order(r.cell), sort_key(r.seed)))
        experiments.append(ExperimentResults(folder, tuple(members), keys))
    return experiments


def load_results(path: Path) -> tuple[list[ExperimentResults], list[str]]:
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
