"""One table row per (experiment, cell, swept values): what happened over the seeds.

Columns (docs/plots.md): experiment, cell, task, T, the other swept keys, seeds, status,
final eval loss mean ± sd (sample sd, over seeds with a finite loss), baseline, solved fraction,
median steps to solve (over the seeds that solved), median gradient ratio ‖∂L/∂h_1‖/‖∂L/∂h_T‖
at the first and last logged step, median decay rate (decades per step, from summary.json) at
both and the rate the largest Lyapunov exponent predicts, median steps per second (the CSV and
JSON formats add the medians of λ₁, the fraction of the decay it explains, σ_max(W_h) and the
keep gate's timescale). Numbers come from summary.json only (the baseline, known before
the end, also from meta.json): runs still being written count in `seeds` and `status` only.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from lstm_vg.analysis import grouping
from lstm_vg.analysis.grouping import ExperimentResults
from lstm_vg.analysis.numbers import finite_or_none, mean_and_sd, median, number, scientific
from lstm_vg.errors import UserError
from lstm_vg.results.read import RunResult

FORMATS = ("markdown", "csv", "json")
IDENTITY_KEYS = ("task.name", "task.length")  # shown as the task and T columns
# summary field → row column holding its median over seeds
MEDIANS = {
    "grad_ratio_init": "grad_ratio_init_median",
    "grad_ratio_final": "grad_ratio_final_median",
    "decay_rate_init": "decay_rate_init_median",
    "decay_rate_final": "decay_rate_final_median",
    "predicted_decay_rate_init": "predicted_decay_rate_init_median",
    "predicted_decay_rate_final": "predicted_decay_rate_final_median",
    "steps_per_second": "steps_per_second_median",
    **{f"{name}_{when}": f"{name}_{when}_median" for name in
       ("lyapunov_max", "decay_explained", "sigma_max", "timescale_median") for when in ("init", "final")},
}


def field(runs: list[RunResult], name: str) -> np.ndarray:
    """(seeds,) float64 of summary[name] over the runs that have a summary; null → NaN."""
    values = [r.summary.get(name) for r in runs if r.summary is not None]
    return np.array([np.nan if v is None else float(v) for v in values], np.float64)


def row(experiment: ExperimentResults, setting: tuple, cell: str, runs: list[RunResult]) -> dict:
    """The table row of one experiment, setting and cell (runs: its seeds)."""
    loss_mean, loss_sd = mean_and_sd(field(runs, "final_eval_loss"))
    solved = field(runs, "solved")
    baselines = [r.baseline_loss for r in runs]
    out = {
        "experiment": experiment.name,
        "cell": cell,
        "task": runs[0].task,
        "T": runs[0].length,
        **{key: value for key, value in setting if key not in IDENTITY_KEYS},
        "seeds": len(runs),
        "status": grouping.status_counts(runs),
        "final_eval_loss_mean": loss_mean,
        "final_eval_loss_sd": loss_sd,
        "baseline_loss": median(baselines),  # from meta.json where a run has no summary yet
        "solved_fraction": finite_or_none(np.mean(solved)) if solved.size else None,
        "steps_to_solve_median": median(field(runs, "steps_to_solve")),  # unsolved: null → left out
    }
    return out | {column: median(field(runs, name)) for name, column in MEDIANS.items()}


def rows(experiments: list[ExperimentResults]) -> list[dict]:
    """Every row, ordered by experiment, setting and cell (the RNN first)."""
    table = []
    for experiment in experiments:
        for setting, runs in experiment.settings().items():
            for cell, group in grouping.by_cell(runs).items():
                table.append(row(experiment, setting, cell, group))
    return table


def columns(table: list[dict]) -> list[str]:
    """The union of the rows' keys, in first-seen order (experiments may sweep different keys)."""
    return list(dict.fromkeys(key for r in table for key in r))


# ---- formats -----------------------------------------------------------------------------------


def markdown_cells(r: dict, swept: list[str]) -> list[str]:
    """One row's cells in the markdown table, formatted for people."""
    loss = number(r["final_eval_loss_mean"])
    if r["final_eval_loss_sd"] is not None:
        loss += f" ± {r['final_eval_loss_sd']:.2g}"
    solved = "—" if r["solved_fraction"] is None else f"{r['solved_fraction']:.0%}"
    steps = r["steps_to_solve_median"]
    return [
        r["experiment"], r["cell"], r["task"], str(r["T"]), *[str(r.get(key, "")) for key in swept],
        str(r["seeds"]), r["status"], loss, number(r["baseline_loss"]), solved,
        "—" if steps is None else f"{steps:g}", scientific(r["grad_ratio_init_median"]),
        scientific(r["grad_ratio_final_median"]), number(r["decay_rate_init_median"]),
        number(r["decay_rate_final_median"]), number(r["predicted_decay_rate_init_median"]),
        number(r["predicted_decay_rate_final_median"]), number(r["steps_per_second_median"]),
    ]


def swept_columns(table: list[dict]) -> list[str]:
    """The columns of swept keys other than the task and T (e.g. "train.lr")."""
    return [c for c in columns(table) if c not in ROW_FIELDS]


def markdown_header(swept: list[str]) -> tuple[list[str], list[bool]]:
    """The markdown table's column titles, and which of them hold numbers (right-aligned)."""
    header = ["experiment", "cell", "task", "T", *swept, "seeds", "status", "final eval loss (mean ± sd)",
              "baseline", "solved", "steps to solve (median)", "grad ratio init", "grad ratio end",
              "decay rate init (dec/step)", "decay rate end (dec/step)", "λ₁-predicted rate init",
              "λ₁-predicted rate end", "steps/s"]
    numeric = [False] * (4 + len(swept)) + [True, False] + [True] * (len(header) - 6 - len(swept))
    return header, numeric


def to_markdown(table: list[dict]) -> str:
    """A GitHub-flavoured markdown table, numbers right-aligned."""
    swept = swept_columns(table)
    header, numeric = markdown_header(swept)
    align = ["--:" if right else ":--" for right in numeric]
    lines = [header, align] + [markdown_cells(r, swept) for r in table]
    return "".join("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |\n" for line in lines)


def to_csv(table: list[dict]) -> str:
    """Plain numbers, one column per field; nulls empty."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns(table), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else repr(v) if isinstance(v, float) else v for k, v in r.items()}
                     for r in table)
    return text.getvalue()


def to_json(table: list[dict]) -> str:
    return json.dumps(table, indent=2) + "\n"


ROW_FIELDS = ("experiment", "cell", "task", "T", "seeds", "status", "final_eval_loss_mean",
              "final_eval_loss_sd", "baseline_loss", "solved_fraction", "steps_to_solve_median",
              *MEDIANS.values())
RENDER = {"markdown": to_markdown, "csv": to_csv, "json": to_json}


def report_path(path: Path, fmt: str = "markdown") -> tuple[str, list[str]]:
    """The report of every run below `path` in `fmt`, and one warning per unreadable run skipped."""
    if fmt not in RENDER:
        raise UserError(f"--format {fmt}: not a table format; allowed: {', '.join(FORMATS)}")
    experiments, skipped = grouping.load_results(Path(path))
    return RENDER[fmt](rows(experiments)), skipped
