"""The real CLI end to end on tiny configs: files, summary fields, and clean errors."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from lstm_vg.devices import cpu_cores
from lstm_vg.results import write

from helpers import DIAGNOSTICS, TINY, assert_same_results, invoke, read_rows

SUMMARY_FIELDS = {
    "status", "cell", "task", "length", "seed", "steps", "baseline_loss", "final_train_loss",
    "final_eval_loss", "solved", "steps_to_solve", "grad_ratio_init", "grad_ratio_final",
    "steps_per_second", "wall_seconds",
}


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    result = invoke("run", TINY, "--out", out, "--set", DIAGNOSTICS)
    assert result.exit_code == 0, result.output
    return out / "tiny", result


def test_run_writes_one_folder_per_cell_and_seed(tiny_results):
    folder, result = tiny_results
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["cell=lstm,seed=0", "cell=lstm,seed=1", "cell=rnn,seed=0", "cell=rnn,seed=1"]
    for name in names:
        files = {p.name for p in (folder / name).iterdir()}
        assert files == {"config.yaml", "meta.json", "metrics.csv", "gradients.npz", "params.npz",
                         "dynamics.npz", "summary.json"}
        assert name in result.output  # the final table lists every run


def test_summary_dynamics_fields_are_those_of_the_logged_arrays(tiny_results):
    """λ₁ and its predicted rate from dynamics.npz, σ_max(W_h) of the saved RNN weights (float64
    NumPy), the LSTM's timescales from its forget gates, steps in the past from the reach."""
    folder, _ = tiny_results
    for cell in ("rnn", "lstm"):
        run = folder / f"cell={cell},seed=0"
        summary = json.loads((run / "summary.json").read_text())
        with np.load(run / "dynamics.npz") as d, np.load(run / "gradients.npz") as g, \
                np.load(run / "params.npz") as params:
            assert summary["lyapunov_max_init"] == pytest.approx(float(d["lyapunov"][0, 0]), rel=1e-12)
            assert summary["lyapunov_max_final"] == pytest.approx(float(d["lyapunov"][-1, 0]), rel=1e-12)
            assert np.all(np.diff(d["lyapunov"], axis=1) <= 0)  # descending
            assert summary["predicted_decay_rate_final"] == pytest.approx(-d["lyapunov"][-1, 0] / np.log(10))
            assert summary["decay_explained_final"] == pytest.approx(
                summary["predicted_decay_rate_final"] / summary["decay_rate_final"])
            assert summary["steps_in_past_final"] == pytest.approx(g["h_reach"][-1].mean())
            assert np.all((g["h_reach"] >= 0) & (g["h_reach"] <= 1))
            if cell == "rnn":
                w_h = params["cell/w_h"].astype(np.float64)
                assert summary["sigma_max_final"] == pytest.approx(np.linalg.svd(w_h, compute_uv=False)[0],
                                                                   rel=1e-12)
                assert summary["spectral_radius_final"] == pytest.approx(np.abs(np.linalg.eigvals(w_h)).max(),
                                                                         rel=1e-12)
                assert "keep_gate" not in d and summary["timescale_median_final"] is None
            else:
                assert "sigma_max" not in d and summary["sigma_max_final"] is None
                assert d["keep_gate"].shape == (3, 8) and np.all((d["keep_gate"] > 0) & (d["keep_gate"] < 1))
                np.testing.assert_allclose(d["timescale"], 1 / (1 - d["keep_gate"].astype(np.float64)))
                assert summary["timescale_median_final"] == pytest.approx(np.median(d["timescale"][-1]))
            assert d["connectivity"].shape == (3, 10) and d["connectivity_examples"].shape == (3, 4, 10)
            assert d["connectivity_inputs"].shape == (4, 10, 2)
            marked = d["connectivity_inputs"][..., 1] == 1
            assert np.all(marked.sum(axis=1) == 2)  # adding's two operands
            share = [(c * marked).sum(axis=1) / c.sum(axis=1) for c in d["connectivity_examples"]]
            assert summary["connectivity_at_markers_init"] == pytest.approx(np.mean(share[0]))
            assert summary["connectivity_at_markers_final"] == pytest.approx(np.mean(share[-1]))


def test_diagnostics_can_be_switched_off(tmp_path):
    result = invoke("run", TINY, "--out", tmp_path, "--set", "log.diagnostics=[]", "--set", "seeds=1",
                    "--set", "sweep.model.cell=[rnn]", "--steps", "10")
    assert result.exit_code == 0, result.output
    run = tmp_path / "tiny" / "cell=rnn,seed=0"
    assert not (run / "dynamics.npz").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["lyapunov_max_final"] is None and summary["sigma_max_final"] is None
    assert yaml.safe_load((run / "config.yaml").read_text())["log"]["diagnostics"] == []
    bad = invoke("run", TINY, "--out", tmp_path / "bad", "--set", "log.diagnostics=[lyapunov, spectra]")
    assert bad.exit_code == 2
    assert "log.diagnostics[1]: 'spectra' is not allowed; allowed: lyapunov, recurrent_matrix" in bad.output


def test_run_ends_with_the_commands_that_draw_and_tabulate_its_results(tiny_results):
    folder, result = tiny_results
    lines = result.output.splitlines()
    assert lines[-3:] == [f"results: {folder}", f"draw it:     lstm-vg plot {folder}",
                          f"tabulate it: lstm-vg report {folder}"]


def test_summary_and_meta_record_the_baseline_and_solved_criterion(tiny_results):
    """What the analysis side reads instead of rebuilding the task: summary.json at the end,
    meta.json from the start (the tiny config: adding, default threshold)."""
    folder, _ = tiny_results
    expected = {"baseline_loss": 1 / 6, "solved_metric": "eval_loss", "solved_relation": "<=",
                "solved_threshold": 0.01}
    for run in folder.iterdir():
        for name in ("summary.json", "meta.json"):
            recorded = json.loads((run / name).read_text())
            assert {key: recorded[key] for key in expected} == pytest.approx(expected), name


@pytest.mark.parametrize("text", ["", "# only a comment\n\n# and another\n"], ids=["0-bytes", "comments"])
def test_an_empty_config_is_refused_in_one_line_naming_the_file(tmp_path, text):
    empty = tmp_path / "empty.yaml"
    empty.write_text(text)
    result = invoke("run", empty, "--out", tmp_path)
    assert result.exit_code == 2 and not (tmp_path / "empty").exists()
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {empty}: the file is empty"), lines


def test_summary_agrees_with_metrics_and_gradients(tiny_results):
    folder, _ = tiny_results
    tiny = yaml.safe_load(TINY.read_text())
    steps, every, length = tiny["train"]["steps"], tiny["log"]["every"], tiny["task"]["length"]
    for run in folder.iterdir():
        summary = json.loads((run / "summary.json").read_text())
        assert SUMMARY_FIELDS <= summary.keys()
        rows = read_rows(run)
        assert [int(r["step"]) for r in rows] == list(range(0, steps + 1, every))
        assert summary["status"] == "done" and summary["steps"] == steps
        assert summary["final_eval_loss"] == pytest.approx(float(rows[-1]["eval_loss"]), rel=1e-12)
        assert summary["final_train_loss"] == pytest.approx(float(rows[-1]["train_loss"]), rel=1e-12)
        assert summary["baseline_loss"] == pytest.approx(1 / 6)
        solved = [int(r["step"]) for r in rows if float(r["eval_loss"]) <= 0.01]
        assert summary["steps_to_solve"] == (solved[0] if solved else None)
        with np.load(run / "gradients.npz") as grads:
            assert list(grads["steps"]) == [int(r["step"]) for r in rows]
            assert grads["h_norms"].shape == (len(rows), length)
            assert ("c_norms" in grads) == (summary["cell"] == "lstm")
            h = grads["h_norms"]
            assert summary["grad_ratio_init"] == pytest.approx(h[0, 0] / h[0, -1], rel=1e-6)
            assert summary["grad_ratio_final"] == pytest.approx(h[-1, 0] / h[-1, -1], rel=1e-6)


def test_params_and_config_are_saved_per_run(tiny_results):
    folder, _ = tiny_results
    run = folder / "cell=lstm,seed=1"
    with np.load(run / "params.npz") as params:
        assert params["cell/w_h"].shape == (8, 32) and params["readout/w"].shape == (8, 1)
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["model"]["cell"] == "lstm" and resolved["seeds"] == [1]
    assert "sweep" not in resolved
    meta = json.loads((run / "meta.json").read_text())
    assert meta["seed"] == 1 and meta["runs_in_batch"] == 2 and meta["finished"]
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():  # the CPU the run was compiled for: /proc/cpuinfo's model name, read here by regex
        model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        assert model is None or meta["host_cpu"].startswith(model.group(1).strip())
        assert ("avx512f" in cpuinfo.read_text()) == meta["host_cpu"].endswith("(avx512f)")


def test_resolved_run_config_reproduces_the_run(tiny_results, tmp_path):
    folder, _ = tiny_results
    run = folder / "cell=rnn,seed=1"
    result = invoke("run", run / "config.yaml", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    again = next((tmp_path / "tiny").iterdir())
    assert (again / "metrics.csv").read_text().splitlines()[1].split(",")[:5] == \
        (run / "metrics.csv").read_text().splitlines()[1].split(",")[:5]


def test_existing_results_are_not_overwritten_without_the_flag(tiny_results):
    folder, _ = tiny_results
    before = (folder / "cell=rnn,seed=0" / "summary.json").read_text()
    result = invoke("run", TINY, "--out", folder.parent)
    assert result.exit_code == 2
    assert "already holds results; pass --resume" in result.output
    assert (folder / "cell=rnn,seed=0" / "summary.json").read_text() == before


def test_flags_override_the_config(tmp_path):
    result = invoke("run", TINY, "--out", tmp_path, "--seeds", 1, "--steps", 10,
                    "--set", "task.name=copy", "--set", "task.length=3", "--set", "sweep.model.cell=[lstm]")
    assert result.exit_code == 0, result.output
    runs = list((tmp_path / "tiny").iterdir())
    assert [r.name for r in runs] == ["cell=lstm,seed=0"]
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert (summary["task"], summary["length"], summary["steps"]) == ("copy", 3, 10)
    assert summary["baseline_loss"] == pytest.approx(10 * np.log(8) / 23)
    with np.load(runs[0] / "gradients.npz") as grads:
        assert grads["h_norms"].shape == (2, 23)  # copy runs T + 20 steps


def test_float64_runs_store_float64_norms(tmp_path):
    result = invoke("run", TINY, "--out", tmp_path, "--seeds", 1, "--steps", 10,
                    "--set", "train.dtype=float64")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "tiny" / "cell=lstm,seed=0" / "gradients.npz") as grads:
        assert grads["h_norms"].dtype == np.float64 and grads["c_norms"].dtype == np.float64


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "missing.yaml"], "missing.yaml: no such file"),
        (["run", TINY, "--set", "model.hiden=3"], "model.hiden: unknown key; did you mean 'hidden'?"),
        (["run", TINY, "--set", "task.length=1"], "task.length: must be ≥ 2"),
        (["run", TINY, "--set", "train.lr=-1"], "train.lr: must be > 0"),
        (["run", TINY, "--steps", 15], "train.steps (15) must be a multiple of log.every (10)"),
        (["run", TINY, "--set", "nonsense"], "expected key.path=value"),
        (["run", TINY, "--devices", "64"], "--devices 64: only 1 device(s) available"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path, args, expected):
    result = invoke(*args, "--out", tmp_path)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]


def test_bad_yaml_file_exits_2_naming_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: {length: [\n")
    result = invoke("run", bad, "--out", tmp_path)
    assert result.exit_code == 2 and f"{bad}: invalid YAML at line" in result.output


def test_module_entry_point_and_info_run_as_a_subprocess():
    done = subprocess.run([sys.executable, "-m", "lstm_vg", "info"], capture_output=True, text=True,
                          timeout=120, env=os.environ | {"XLA_FLAGS": ""})
    assert done.returncode == 0, done.stderr
    assert "jax" in done.stdout and "cpu" in done.stdout.lower()


@pytest.mark.parametrize("flags, devices", [((), cpu_cores()), (("--host-devices", "3"), 3)])
def test_the_cpu_is_one_device_per_core_unless_told_otherwise(flags, devices):
    done = subprocess.run([sys.executable, "-m", "lstm_vg", "info", *flags], capture_output=True,
                          text=True, timeout=120, env=os.environ | {"XLA_FLAGS": ""})
    assert done.returncode == 0, done.stderr
    assert f"· {devices} device(s)" in done.stdout
    assert sum(line.strip().endswith("(cpu)") for line in done.stdout.splitlines()) == devices


def test_help_documents_every_command():
    result = invoke("--help")
    assert result.exit_code == 0 and "run" in result.output and "info" in result.output
    run_help = invoke("run", "--help").output
    for option in ("--set", "--seeds", "--steps", "--out", "--overwrite"):
        assert option in run_help


def signal_after_two_logs(args: list[str], metrics: Path, signum: int) -> tuple[int, str]:
    """Start `python -m lstm_vg ARGS`, send it `signum` once `metrics` holds two logged rows;
    (its exit code, its stderr)."""
    # As from a terminal: a shell without job control starts background commands with SIGINT
    # ignored, and Python then installs no Ctrl-C handler; pytest may run in such a shell.
    as_from_a_terminal = ("import runpy, signal, sys\n"
                          "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
                          f"sys.argv = ['lstm-vg', *{args!r}]\n"
                          "runpy.run_module('lstm_vg', run_name='__main__')\n")
    process = subprocess.Popen([sys.executable, "-c", as_from_a_terminal],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.1)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


def test_ctrl_c_keeps_what_was_logged_and_marks_runs_interrupted(tmp_path):
    long_run = tmp_path / "long.yaml"
    long_run.write_text(TINY.read_text().replace("steps: 20", "steps: 1000000")
                        .replace("name: tiny", "name: long"))
    metrics = tmp_path / "long" / "cell=rnn,seed=0" / "metrics.csv"
    returncode, stderr = signal_after_two_logs(["run", str(long_run), "--out", str(tmp_path)], metrics,
                                               signal.SIGINT)
    assert returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    for run in ("cell=rnn,seed=0", "cell=rnn,seed=1"):
        summary = json.loads((tmp_path / "long" / run / "summary.json").read_text())
        rows = read_rows(tmp_path / "long" / run)
        assert summary["status"] == "interrupted" and len(rows) >= 2
        assert summary["steps"] == int(rows[-1]["step"])


def test_sigterm_keeps_a_checkpoint_and_resume_ends_like_an_uninterrupted_run(tmp_path):
    """A real SIGTERM mid-run: exit 143 with the command that continues; `run --resume` then
    finishes the interrupted batch from its checkpoint and trains the batch never started, with
    the results of a run that was never stopped."""
    mid = tmp_path / "mid.yaml"
    mid.write_text(TINY.read_text().replace("steps: 20", "steps: 600").replace("name: tiny", "name: mid"))
    args = ["run", str(mid), "--seeds", "1", "--out", str(tmp_path / "cut")]
    metrics = tmp_path / "cut" / "mid" / "cell=rnn,seed=0" / "metrics.csv"
    returncode, stderr = signal_after_two_logs(args, metrics, signal.SIGTERM)
    assert returncode == 143, stderr
    assert "Traceback" not in stderr
    assert f"continue with: lstm-vg {' '.join(args)} --resume" in " ".join(stderr.split())
    summary = json.loads((metrics.parent / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 10 <= summary["steps"] < 600
    resumed = invoke(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    whole = invoke("run", mid, "--seeds", "1", "--out", tmp_path / "whole")
    assert whole.exit_code == 0, whole.output
    assert_same_results(tmp_path / "whole" / "mid", tmp_path / "cut" / "mid", runs=2)


def test_resume_and_overwrite_exclude_each_other(tmp_path):
    result = invoke("run", TINY, "--out", tmp_path, "--resume", "--overwrite")
    assert result.exit_code == 2 and "exclude each other" in result.output


def test_a_request_too_big_for_memory_is_refused_up_front_with_the_estimate(tmp_path):
    result = invoke("run", TINY, "--out", tmp_path, "--set", "task.length=100000",
                    "--set", "model.hidden=4096", "--set", "train.batch=512")
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split())
    assert line.startswith(f"error: {TINY}: rnn · adding T=100000 · 2 run(s) needs about ")
    assert "GiB" in line and "set train.remat" in line and "Traceback" not in result.output
    assert not (tmp_path / "tiny").exists()


def test_a_second_process_on_the_same_results_folder_is_refused(tmp_path):
    with write.lock(tmp_path, "tiny"):  # as a running `lstm-vg run` holds it
        result = invoke("run", TINY, "--out", tmp_path)
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert f"another lstm-vg process (pid {os.getpid()}) is writing these results" in output
    assert invoke("run", TINY, "--out", tmp_path, "--steps", "10").exit_code == 0  # released


def run_tiny_in_subprocess(out: Path, *flags: str, env: dict | None = None, config: Path = TINY) -> Path:
    """`lstm-vg run` of the tiny config with 3 seeds in a fresh process (devices are fixed when
    JAX starts); returns the experiment folder."""
    done = subprocess.run([sys.executable, "-m", "lstm_vg", "run", config, "--seeds", "3", "--out",
                           str(out), *flags],  # a later --seeds wins
                          capture_output=True, text=True, timeout=300,
                          env=None if env is None else os.environ | env)
    assert done.returncode == 0, done.stderr
    return out / "tiny"


@pytest.fixture(scope="module")
def one_device(tmp_path_factory) -> Path:
    """The tiny config's 3 seeds on one device, in a fresh process: what the split runs must equal."""
    return run_tiny_in_subprocess(tmp_path_factory.mktemp("one"), "--host-devices", "1")


def test_runs_split_over_devices_give_the_results_of_one_device(tmp_path, one_device):
    """3 runs per batch on 2 host devices (padded to 4) and on 3 of 4 forced host devices give
    bit for bit the metrics, params and gradient profiles of the same runs on one device."""
    one = one_device
    split = run_tiny_in_subprocess(tmp_path / "two", "--host-devices", "2")
    forced = run_tiny_in_subprocess(tmp_path / "four", "--devices", "4",
                                    env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    assert json.loads((split / "cell=lstm,seed=0" / "meta.json").read_text())["devices"] == 2
    assert json.loads((forced / "cell=lstm,seed=0" / "meta.json").read_text())["devices"] == 3
    assert json.loads((one / "cell=lstm,seed=0" / "meta.json").read_text())["devices"] == 1
    assert_same_results(one, split, runs=6)
    assert_same_results(one, forced, runs=6)


def test_two_processes_share_a_sweep_and_give_the_results_of_one(tmp_path, one_device):
    """`--distributed` with two local processes (jax.distributed over localhost, as on two
    hosts): each trains its share of every batch (seeds 0 and 2, seed 1), and together they
    write bit for bit the results of one process."""
    one = one_device
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    processes = [
        subprocess.Popen([sys.executable, "-m", "lstm_vg", "run", TINY, "--seeds", "3", "--out",
                          str(tmp_path / "two"), "--distributed"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         env=os.environ | {"JAX_COORDINATOR_ADDRESS": f"localhost:{port}",
                                           "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(rank)})
        for rank in (0, 1)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    two = tmp_path / "two" / "tiny"
    shares = {run: json.loads((two / run / "meta.json").read_text())["runs_in_batch"]
              for run in ("cell=lstm,seed=0", "cell=lstm,seed=1", "cell=lstm,seed=2")}
    assert shares == {"cell=lstm,seed=0": 2, "cell=lstm,seed=1": 1, "cell=lstm,seed=2": 2}
    assert_same_results(one, two, runs=6)


def test_split_batch_trains_like_one_device_to_rounding(tmp_path):
    """One run per batch, its training batch split over 2 host devices (each takes half, the
    gradients are averaged): the same numbers as one device up to float32 rounding, on both
    tasks (copy reads every step: its targets split along another axis)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.read_text().replace("length: 10", "length: 6").replace(
        "sweep: {model.cell: [rnn, lstm]}", "sweep: {task.name: [adding, copy]}"))
    one = run_tiny_in_subprocess(tmp_path / "one", "--seeds", "1", "--host-devices", "1", config=config)
    split = run_tiny_in_subprocess(tmp_path / "split", "--seeds", "1", "--host-devices", "2", "--split-batch",
                                   config=config)
    runs = ["name=adding,seed=0", "name=copy,seed=0"]
    assert sorted(p.name for p in one.iterdir()) == sorted(runs)
    for run in runs:
        meta = json.loads((split / run / "meta.json").read_text())
        assert (meta["devices"], meta["batch_shards"]) == (2, 2)
        with np.load(one / run / "params.npz") as x, np.load(split / run / "params.npz") as y:
            for key in x:
                np.testing.assert_allclose(x[key], y[key], rtol=1e-4, atol=1e-6, err_msg=key)
        rows_one, rows_split = read_rows(one / run), read_rows(split / run)
        for a, b in zip(rows_one, rows_split, strict=True):
            np.testing.assert_allclose(float(a["train_loss"]), float(b["train_loss"]), rtol=1e-4)
