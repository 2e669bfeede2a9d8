"""The report table from synthetic results: its numbers equal the mean, sd and medians of the
stored summaries, in markdown, CSV and JSON, through the library and the real CLI."""

import csv
import io
import json

import numpy as np
import pytest

from lstm_vg.analysis import grouping, report
from lstm_vg.results import summary

from helpers import invoke
from test_results import BASELINE, LENGTHS, SEEDS, metric_rows, profile, write_run, write_single, write_sweep


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    write_sweep(root)
    write_single(root)
    return root


@pytest.fixture(scope="module")
def table(tree):
    return report.rows(grouping.load_results(tree)[0])


def final_eval_losses(cell):
    return [metric_rows(cell, s, "adding")[-1]["eval_loss"] for s in SEEDS]


def test_one_row_per_experiment_cell_and_length_rnn_first(table):
    keys = [(r["experiment"], r["T"], r["cell"]) for r in table]
    assert keys == [("single", 10, "rnn"), ("single", 10, "lstm")] + \
        [("sweep", T, cell) for T in LENGTHS for cell in ("rnn", "lstm")]
    assert all(r["seeds"] == 3 and r["status"] == "done" for r in table if r["experiment"] == "sweep")


def test_row_numbers_equal_mean_sd_and_medians_of_the_summaries(table):
    row = next(r for r in table if (r["experiment"], r["T"], r["cell"]) == ("sweep", 12, "lstm"))
    losses = final_eval_losses("lstm")
    assert row["final_eval_loss_mean"] == pytest.approx(np.mean(losses))
    assert row["final_eval_loss_sd"] == pytest.approx(np.std(losses, ddof=1))
    assert row["baseline_loss"] == pytest.approx(BASELINE)
    assert row["solved_fraction"] == 1.0 and row["steps_to_solve_median"] == 30  # solved at 30, 30, 20
    init = [summary.grad_ratio(profile("lstm", 12, s, 0)) for s in SEEDS]
    final = [summary.decay_rate(profile("lstm", 12, s, 3)) for s in SEEDS]
    assert row["grad_ratio_init_median"] == pytest.approx(np.median(init))
    assert row["decay_rate_final_median"] == pytest.approx(np.median(final))
    assert row["steps_per_second_median"] == pytest.approx(101.0)


def test_unsolved_and_underflowed_runs_give_null_not_zero(table):
    row = next(r for r in table if (r["experiment"], r["T"], r["cell"]) == ("sweep", 16, "rnn"))
    assert row["solved_fraction"] == 0.0 and row["steps_to_solve_median"] is None
    assert row["grad_ratio_final_median"] == 0.0  # h_1 underflowed to exactly 0: the ratio is 0
    expected = np.median([summary.decay_rate(profile("rnn", 16, s, 3)) for s in SEEDS])
    assert row["decay_rate_final_median"] == pytest.approx(expected)  # zeros left out of the fit


def test_markdown_table_shows_the_numbers(table):
    text = report.to_markdown(table)
    lines = text.splitlines()
    assert len(lines) == 2 + len(table)
    assert lines[0].startswith("| experiment | cell | task | T |") and "decay rate init" in lines[0]
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    row = next(line for line in lines if line.startswith("| sweep | lstm | adding | 12 |"))
    losses = final_eval_losses("lstm")
    assert f"{np.mean(losses):.3g} ± {np.std(losses, ddof=1):.2g}" in row
    assert "| 100% |" in row and "| 30 |" in row
    rnn = next(line for line in lines if line.startswith("| sweep | rnn | adding | 16 |"))
    assert "| 0% | — |" in rnn  # nobody solved: no steps to solve


def test_csv_and_json_hold_the_same_rows(table):
    from_json = json.loads(report.to_json(table))
    from_csv = list(csv.DictReader(io.StringIO(report.to_csv(table))))
    assert from_json == table
    assert len(from_csv) == len(table)
    for parsed, row in zip(from_csv, table, strict=True):
        assert float(parsed["final_eval_loss_mean"]) == row["final_eval_loss_mean"]
        assert parsed["steps_to_solve_median"] == ("" if row["steps_to_solve_median"] is None
                                                   else repr(row["steps_to_solve_median"]))


def test_other_swept_keys_get_their_own_column(tmp_path):
    for lr in (0.01, 0.1):
        folder = write_run(tmp_path / "lr", "lstm", 6, 0, sweep=("model.cell",))
        folder.rename(tmp_path / "lr" / f"lr={lr},seed=0")
        summary = json.loads((tmp_path / "lr" / f"lr={lr},seed=0" / "summary.json").read_text())
        summary |= {"sweep.train.lr": lr, "final_eval_loss": lr}
        (tmp_path / "lr" / f"lr={lr},seed=0" / "summary.json").write_text(json.dumps(summary))
    table = report.rows(grouping.load_results(tmp_path)[0])
    assert [(r["train.lr"], r["final_eval_loss_mean"]) for r in table] == [(0.01, 0.01), (0.1, 0.1)]
    assert "| train.lr |" in report.to_markdown(table).splitlines()[0]


def test_running_runs_count_in_status_but_not_in_the_numbers(tmp_path):
    write_run(tmp_path / "live", "lstm", 6, 0, sweep=("model.cell",))
    write_run(tmp_path / "live", "lstm", 6, 1, sweep=("model.cell",), summary=False)
    [row] = report.rows(grouping.load_results(tmp_path)[0])
    assert row["seeds"] == 2 and row["status"] == "done 1, running 1"
    assert row["final_eval_loss_mean"] == pytest.approx(final_eval_losses("lstm")[0])
    assert row["final_eval_loss_sd"] is None
    write_run(tmp_path / "later", "rnn", 6, 0, sweep=("model.cell",), summary=False)
    [row] = report.rows(grouping.load_results(tmp_path / "later")[0])
    assert row["status"] == "running 1" and row["final_eval_loss_mean"] is None
    assert row["baseline_loss"] == pytest.approx(BASELINE)  # from meta.json: known at the start


def test_cli_report_markdown_by_default_and_json_on_request(tree):
    result = invoke("report", tree)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("| experiment | cell |")
    assert "| sweep | lstm | adding | 16 |" in result.output
    as_json = invoke("report", tree / "sweep", "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    assert [r["T"] for r in json.loads(as_json.output)] == [T for T in LENGTHS for _ in ("rnn", "lstm")]
    as_csv = invoke("report", tree / "single", "--format", "csv")
    assert as_csv.output.splitlines()[0].startswith("experiment,cell,task,T,seeds,status,")


def test_cli_report_on_an_empty_folder_exits_2_with_one_line(tmp_path):
    result = invoke("report", tmp_path)
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "no runs found" in result.output


def test_cli_report_skips_a_corrupt_run_with_a_warning(tmp_path):
    folder = write_single(tmp_path, seeds=(0, 1))
    (folder / "cell=rnn,seed=0" / "summary.json").write_text('{"status": ')
    result = invoke("report", folder, "--format", "json")
    assert result.exit_code == 0, result.output
    assert "warning: skipped a run:" in result.stderr and "cell=rnn,seed=0/summary.json" in result.stderr
    rows = json.loads(result.stdout)  # stdout stays machine-readable
    assert [(r["cell"], r["seeds"]) for r in rows] == [("rnn", 1), ("lstm", 2)]


def test_cli_report_with_nothing_readable_exits_2(tmp_path):
    folder = write_run(tmp_path / "e", "rnn", 5, 0, sweep=("model.cell",))
    (folder / "metrics.csv").write_text("nonsense\n")
    (folder / "summary.json").unlink()
    result = invoke("report", tmp_path)
    assert result.exit_code == 2 and "metrics.csv: missing column" in result.output
