"""Reading results folders back: finding runs, grouping them, loading the documented files, and
one-line errors for folders that hold nothing usable.

The synthetic results written here (`write_run`, `write_sweep`) are shared with test_plots.py and
test_report.py: small files in the documented format with known numbers, so every figure and table
can be checked against the numbers that went in.
"""

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lstm_vg.analysis import grouping
from lstm_vg.cli import app
from lstm_vg.errors import UserError
from lstm_vg.results import read, write
from lstm_vg.results import summary as summaries

from helpers import DIAGNOSTICS, TINY

STEPS = (0, 10, 20, 30)  # logged steps of every synthetic run
LENGTHS = (8, 12, 16)  # the T sweep
SEEDS = (0, 1, 2)
BASELINE = 1 / 6


def profile(cell: str, length: int, seed: int, log: int) -> np.ndarray:
    """A known (T,) float32 ‖∂L/∂h_t‖ profile: the RNN decays fast and, from log 2 on, its first
    length // 4 entries are exactly 0 (underflow); the LSTM stays nearly flat."""
    t = np.arange(length)
    rate = {"rnn": 0.3 + 0.1 * log, "lstm": 0.02}[cell]  # decades per step
    norms = (1 + 0.1 * seed) * 10.0 ** (-rate * (length - 1 - t))
    if cell == "rnn" and log >= 2:
        norms[: length // 4] = 0.0
    return norms.astype(np.float32)


def metric_rows(cell: str, seed: int, task: str) -> list[dict]:
    """Known metrics: the RNN stays near the baseline; the LSTM's eval MSE falls by a factor
    (0.3 − 0.05·seed) per log, so it is solved (≤ 0.01) at step 30, 30 and 20 for seeds 0, 1, 2."""
    rows = []
    for k, step in enumerate(STEPS):
        eval_loss = BASELINE + 0.01 * seed if cell == "rnn" else BASELINE * (0.3 - 0.05 * seed) ** k
        accuracy = 0.1 if cell == "rnn" else min(1.0, 0.34 * k + 0.01 * seed)
        rows.append({"step": step, "train_loss": 1.1 * eval_loss, "eval_loss": eval_loss,
                     "eval_accuracy": accuracy, "grad_norm": 0.5, "wall_seconds": 1.0 + step})
    return rows


def solved_step(task: str, rows: list[dict]):
    if task == "adding":
        hits = [r["step"] for r in rows if r["eval_loss"] <= 0.01]
    else:
        hits = [r["step"] for r in rows if r["eval_accuracy"] >= 0.99]
    return hits[0] if hits else None


def write_run(experiment: Path, cell: str, length: int, seed: int, *, task: str = "adding",
              sweep=("model.cell", "task.length"), summary: bool = True, norms: bool = True,
              meta: bool = True) -> Path:
    """One run folder in the documented format; returns it. `meta`: write meta.json's task
    fields, as runs do when they start (results of earlier versions have none)."""
    point = {"model.cell": cell, "task.length": length}
    point = {key: point[key] for key in sweep}
    name = ",".join([f"{k.split('.')[-1]}={v}" for k, v in point.items()] + [f"seed={seed}"])
    folder = experiment / name
    folder.mkdir(parents=True)
    config = {"name": experiment.name, "task": {"name": task, "length": length, "threshold": None},
              "model": {"cell": cell, "hidden": 4}, "train": {"steps": STEPS[-1], "batch": 8},
              "log": {"every": 10}, "seeds": [seed]}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    rows = metric_rows(cell, seed, task)
    baseline = BASELINE if task == "adding" else 10 * np.log(8) / (length + 20)
    criterion = ("eval_loss", "<=", 0.01) if task == "adding" else ("eval_accuracy", ">=", 0.99)
    if meta:
        fields = dict(zip(("solved_metric", "solved_relation", "solved_threshold"), criterion, strict=True))
        (folder / "meta.json").write_text(json.dumps({"seed": seed, "baseline_loss": baseline, **fields}))
    with open(folder / "metrics.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    h = np.stack([profile(cell, length, seed, k) for k in range(len(STEPS))])
    if norms:
        arrays = {"steps": np.array(STEPS, np.int64), "h_norms": h}
        if cell == "lstm":
            arrays["c_norms"] = 2 * h
        np.savez(folder / "gradients.npz", **arrays)
    if summary:
        fields = {
            "status": "done", "experiment": experiment.name, "run": name, "cell": cell, "task": task,
            "length": length, "seed": seed, **{f"sweep.{k}": v for k, v in point.items()},
            "steps": STEPS[-1], "baseline_loss": baseline, "final_train_loss": rows[-1]["train_loss"],
            "final_eval_loss": rows[-1]["eval_loss"], "final_eval_accuracy": rows[-1]["eval_accuracy"],
            "solved": solved_step(task, rows) is not None, "steps_to_solve": solved_step(task, rows),
            "grad_ratio_init": summaries.grad_ratio(h[0]), "grad_ratio_final": summaries.grad_ratio(h[-1]),
            "decay_rate_init": summaries.decay_rate(h[0]), "decay_rate_final": summaries.decay_rate(h[-1]),
            "diverged_at_step": None, "steps_per_second": 100.0 + seed, "wall_seconds": 0.3,
        }
        (folder / "summary.json").write_text(json.dumps(fields, indent=2))
    return folder


def write_sweep(root: Path, name: str = "sweep") -> Path:
    """An experiment folder: cells rnn and lstm × T in LENGTHS × SEEDS."""
    for cell in ("rnn", "lstm"):
        for length in LENGTHS:
            for seed in SEEDS:
                write_run(root / name, cell, length, seed)
    return root / name


def write_single(root: Path, name: str = "single", seeds=(0, 1)) -> Path:
    """An experiment that sweeps the cell only, at T = 10."""
    for cell in ("rnn", "lstm"):
        for seed in seeds:
            write_run(root / name, cell, 10, seed, sweep=("model.cell",))
    return root / name


@pytest.fixture
def tree(tmp_path) -> Path:
    write_sweep(tmp_path / "results")
    write_single(tmp_path / "results")
    return tmp_path / "results"


def run_names(experiments) -> list[str]:
    return [str(r.folder) for e in experiments for r in e.runs]


def test_finds_the_same_runs_from_a_run_an_experiment_or_a_tree(tree):
    everything, warnings = grouping.load_results(tree)
    assert warnings == []
    assert [e.name for e in everything] == ["single", "sweep"]
    assert len(run_names(everything)) == 2 * 2 + 2 * len(LENGTHS) * len(SEEDS)
    experiment, _ = grouping.load_results(tree / "sweep")
    assert run_names(experiment) == run_names(everything[1:])
    one, _ = grouping.load_results(tree / "sweep" / "cell=lstm,length=12,seed=1")
    assert [r.name for r in one[0].runs] == ["cell=lstm,length=12,seed=1"]


def test_plots_and_hidden_folders_are_not_runs(tree):
    (tree / "single" / "plots").mkdir()
    (tree / "single" / "plots" / "a.png").write_bytes(b"")
    (tree / ".cache" / "x").mkdir(parents=True)
    (tree / ".cache" / "x" / "summary.json").write_text("{}")
    assert len(read.find_run_folders(tree)) == 4 + 2 * len(LENGTHS) * len(SEEDS)


def test_runs_are_grouped_by_setting_and_cell_with_the_rnn_first(tree):
    sweep = grouping.load_results(tree / "sweep")[0][0]
    assert sweep.swept_keys == ("model.cell", "task.length")
    settings = sweep.settings()
    assert list(settings) == [(("task.length", T),) for T in LENGTHS]
    runs = settings[(("task.length", 12),)]
    assert [(r.cell, r.seed) for r in runs] == [("rnn", s) for s in SEEDS] + [("lstm", s) for s in SEEDS]


def test_a_run_loads_the_stored_numbers(tree):
    run = read.load_run(tree / "sweep" / "cell=rnn,length=16,seed=2")
    assert (run.cell, run.task, run.length, run.seed, run.status) == ("rnn", "adding", 16, 2, "done")
    np.testing.assert_array_equal(run.metrics["step"], STEPS)
    expected = [r["eval_loss"] for r in metric_rows("rnn", 2, "adding")]
    np.testing.assert_allclose(run.metrics["eval_loss"], expected)
    np.testing.assert_array_equal(run.norms["h_norms"][-1], profile("rnn", 16, 2, 3))
    assert "c_norms" not in run.norms
    assert run.baseline_loss == pytest.approx(BASELINE)
    assert run.solved_criterion() == ("eval_loss", "<=", 0.01)  # threshold null: the default


def test_a_running_run_is_read_from_its_config_and_missing_files_are_none(tmp_path):
    folder = write_run(tmp_path / "live", "lstm", 10, 4, summary=False, norms=False)
    run = read.load_run(folder)
    assert (run.status, run.cell, run.task, run.length, run.seed) == ("running", "lstm", "adding", 10, 4)
    assert run.summary is None and run.norms is None and run.metrics["step"].size == len(STEPS)
    assert run.baseline_loss == pytest.approx(BASELINE)  # from meta.json, as there is no summary
    assert run.solved_criterion() == ("eval_loss", "<=", 0.01)


def test_a_run_of_an_earlier_version_reads_its_criterion_from_its_task_and_threshold(tmp_path):
    """Before summary.json and meta.json recorded the solved criterion, readers knew it from the
    task; those results still read (a running one has no baseline until it ends)."""
    done = read.load_run(write_run(tmp_path / "old", "lstm", 10, 0, task="copy", meta=False))
    assert done.solved_criterion() == ("eval_accuracy", ">=", 0.99)
    assert done.baseline_loss == pytest.approx(10 * np.log(8) / 30)
    live = read.load_run(write_run(tmp_path / "old", "rnn", 10, 1, summary=False, meta=False))
    assert live.solved_criterion() == ("eval_loss", "<=", 0.01) and live.baseline_loss is None


def test_swept_keys_come_from_the_configs_when_no_run_has_finished(tmp_path):
    for cell in ("rnn", "lstm"):
        for length in (5, 9):
            write_run(tmp_path / "live", cell, length, 0, summary=False)
    experiment = grouping.load_results(tmp_path / "live")[0][0]
    assert experiment.swept_keys == ("model.cell", "task.length")
    assert list(experiment.settings()) == [(("task.length", 5),), (("task.length", 9),)]


@pytest.mark.parametrize("damage, expected", [
    (lambda f: (f / "summary.json").write_text('{"status": "done",'), "summary.json: not valid JSON"),
    (lambda f: (f / "summary.json").write_text('[1, 2]'), "summary.json: expected a JSON object"),
    (lambda f: (f / "gradients.npz").write_bytes((f / "gradients.npz").read_bytes()[:150]),
     "gradients.npz: unreadable, truncated or not an .npz archive"),
    (lambda f: (f / "metrics.csv").write_text("step,train_loss\n0,1\n"),
     "metrics.csv: missing column 'eval_loss'"),
    (lambda f: (f / "metrics.csv").write_text((f / "metrics.csv").read_text().replace("0.5", "oops", 1)),
     "metrics.csv: column 'grad_norm' holds a value that is not a number"),
    (lambda f: (f / "config.yaml").write_text("task: [unclosed"), "config.yaml: invalid YAML"),
])
def test_an_unreadable_run_is_skipped_with_a_warning_naming_the_file(tree, damage, expected):
    bad = tree / "single" / "cell=lstm,seed=1"
    damage(bad)
    experiments, warnings = grouping.load_results(tree)
    assert len(warnings) == 1 and expected in warnings[0] and str(bad) in warnings[0]
    assert "\n" not in warnings[0]
    assert str(bad) not in run_names(experiments)
    with pytest.raises(UserError, match=expected):
        grouping.load_results(bad)  # alone, nothing is readable: an error, not a warning


def test_a_folder_without_runs_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no runs found"):
        grouping.load_results(tmp_path)
    with pytest.raises(UserError, match="no such file or folder"):
        grouping.load_results(tmp_path / "missing")


def test_nothing_readable_is_one_user_error_naming_the_first_file(tmp_path):
    for seed in (0, 1):
        (write_run(tmp_path / "e", "rnn", 5, seed) / "summary.json").write_text("garbage")
    with pytest.raises(UserError) as error:
        grouping.load_results(tmp_path)
    message = str(error.value)
    assert "cell=rnn,length=5,seed=0/summary.json: not valid JSON" in message
    assert "and 1 more unreadable runs" in message and "\n" not in message


# ---- damaged results folders through the real CLI -----------------------------------------------

@pytest.fixture(scope="module")
def real_results(tmp_path_factory) -> Path:
    """A results folder written by `lstm-vg run` on the tiny config (2 cells × 2 seeds)."""
    out = tmp_path_factory.mktemp("real")
    assert CliRunner().invoke(app, ["run", str(TINY), "--out", str(out), "--set", DIAGNOSTICS]).exit_code == 0
    return out / "tiny"


FILES = ("config.yaml", "meta.json", "metrics.csv", "gradients.npz", "dynamics.npz", "params.npz",
         "summary.json")
damages = st.tuples(
    st.sampled_from(["cell=rnn,seed=0", "cell=lstm,seed=1"]),
    st.sampled_from(FILES),
    st.sampled_from(["delete", "truncate", "junk", "empty"]),
    st.floats(0, 1),
    st.binary(max_size=40),
)


@settings(max_examples=15, deadline=None)
@given(st.lists(damages, min_size=1, max_size=3), st.sampled_from(["report", "plot"]))
def test_damaged_results_are_skipped_with_a_warning_or_refused_in_one_line(real_results, damage, command):
    """Deleted, truncated, emptied or junk files in real run folders: `report` and `plot` still
    answer for the rest (exit 0, one warning line per skipped run) or exit 2 with one line,
    never a traceback."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(shutil.copytree(real_results, Path(scratch) / "tiny"))
        for run, name, how, fraction, junk_bytes in damage:
            path = folder / run / name
            if how == "delete":
                path.unlink(missing_ok=True)
            elif path.exists():
                data = path.read_bytes()
                path.write_bytes({"truncate": data[: int(fraction * len(data))], "junk": junk_bytes,
                                  "empty": b""}[how])
        figures = ["--out", str(Path(scratch) / "figures")] if command == "plot" else []
        args = [command, str(folder), *figures]
        result = CliRunner().invoke(app, args)
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_config_key_added_since_an_old_run_was_written_is_not_a_swept_key(tree):
    """Runs written before a key existed (no `train.remat` in their config.yaml) group with new
    runs that store its default: the reader fills in the schema's defaults."""
    old = tree / "single" / "cell=rnn,seed=0" / "config.yaml"
    raw = yaml.safe_load(old.read_text())
    raw["train"]["remat"] = 0
    old.write_text(yaml.safe_dump(raw))
    experiments, _ = grouping.load_results(tree / "single")
    assert grouping.swept_keys(experiments[0].runs) == ("model.cell",)


@pytest.mark.parametrize("older", ["no diagnostics key", "diagnostics swept"])
def test_configs_with_and_without_diagnostics_group_and_report(real_results, tmp_path, older):
    """A run written before `log.diagnostics` existed reads as the default (so it is not a swept
    key); runs that differ in it form settings keyed by the list (a list is not hashable)."""
    folder = Path(shutil.copytree(real_results, tmp_path / "tiny"))
    config = folder / "cell=rnn,seed=0" / "config.yaml"
    raw = yaml.safe_load(config.read_text())
    if older == "no diagnostics key":
        for key in ("diagnostics", "lyapunov_exponents", "connectivity_examples"):
            del raw["log"][key]
    else:
        raw["log"]["diagnostics"] = ["lyapunov"]
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    [experiment], skipped = grouping.load_results(folder)
    assert not skipped
    assert ("log.diagnostics" in experiment.swept_keys) == (older == "diagnostics swept")
    result = CliRunner().invoke(app, ["report", str(folder)])
    assert result.exit_code == 0, result.output


def test_results_files_get_the_permissions_of_a_plain_open(tmp_path):
    """atomic_write's temporary file is mkstemp's (0600); the file it leaves must read like any
    other the user writes: 0666 less the umask (here 022 → 0644)."""
    previous = os.umask(0o022)
    try:
        write.atomic_write(tmp_path / "summary.json", b"{}\n")
        plain = tmp_path / "plain.json"
        plain.write_bytes(b"{}\n")
    finally:
        os.umask(previous)
    mode = (tmp_path / "summary.json").stat().st_mode & 0o777
    assert mode == plain.stat().st_mode & 0o777 == 0o644
