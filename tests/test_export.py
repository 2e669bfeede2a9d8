"""`lstm-vg export PATH --tensorboard DIR` through the real CLI: the event files, read back with
tensorboardX's own protos and a plain TFRecord reader, hold metrics.csv's numbers, the summary's
gradient and dynamics figures at every logged step, and one profile image per step; a missing
extra, no runs or an unwritable DIR are one line and exit code 2."""

import json
import math
import struct
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from lstm_vg.analysis.tensorboard import writer_class
from lstm_vg.results import read
from lstm_vg.results import summary as summaries

from helpers import DIAGNOSTICS, ROOT, TINY, invoke
from test_results import STEPS, write_run, write_single

RUNS = ("tiny/cell=lstm,seed=0", "tiny/cell=rnn,seed=0")


def masked(crc: int) -> int:
    """TFRecord's masked CRC-32C (tensorflow/core/lib/hash/crc32c.h)."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(logdir: Path) -> list:
    """The one event file in `logdir`, record by record: length (uint64), its masked CRC, the
    Event proto, its masked CRC; every CRC checked."""
    writer_class()  # loads tensorboardX as `export` does: without torch (4 s where it is installed)
    from tensorboardX.crc32c import crc32c
    from tensorboardX.proto.event_pb2 import Event

    [file] = logdir.glob("events.out.tfevents.*")
    data, events, i = file.read_bytes(), [], 0
    while i < len(data):
        header = data[i:i + 8]
        (length,), (header_crc,) = struct.unpack("<Q", header), struct.unpack("<I", data[i + 8:i + 12])
        body = data[i + 12:i + 12 + length]
        (body_crc,) = struct.unpack("<I", data[i + 12 + length:i + 16 + length])
        assert header_crc == masked(crc32c(header)) and body_crc == masked(crc32c(body))
        events.append(Event.FromString(body))
        i += 16 + length
    return events


def scalars(events) -> dict[str, dict[int, float]]:
    """tag → {step: value} of the scalar summaries."""
    out = {}
    for event in events:
        for value in event.summary.value:
            if value.WhichOneof("value") == "simple_value":
                out.setdefault(value.tag, {})[event.step] = value.simple_value
    return out


def images(events) -> dict[str, dict[int, object]]:
    out = {}
    for event in events:
        for value in event.summary.value:
            if value.WhichOneof("value") == "image":
                out.setdefault(value.tag, {})[event.step] = value.image
    return out


def f32(value) -> float:
    """A number as TensorBoard's scalar summary holds it (float32)."""
    return float(np.float32(value))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The tiny config (RNN and LSTM), one seed, 10 steps (logged at 0 and 10), every diagnostic,
    trained and exported by the real CLI."""
    root = tmp_path_factory.mktemp("export")
    trained = invoke("run", TINY, "--out", root / "results", "--seeds", 1, "--steps", 10,
                     "--set", DIAGNOSTICS)
    assert trained.exit_code == 0, trained.output
    result = invoke("export", root / "results", "--tensorboard", root / "tb")
    assert result.exit_code == 0, result.output
    runs = {name: read.load_run(root / "results" / name) for name in RUNS}
    events = {name: read_events(root / "tb" / name) for name in RUNS}
    return root, result, runs, events


def test_one_tensorboard_run_per_run_named_by_experiment_and_run(exported):
    root, result, _, events = exported
    assert sorted(p.parent.relative_to(root / "tb").as_posix()
                  for p in (root / "tb").rglob("events.out.tfevents.*")) == list(RUNS)
    assert result.output.splitlines() == [*RUNS, f"open it: tensorboard --logdir {root / 'tb'}"]
    for name in RUNS:
        assert events[name][0].file_version == "brain.Event:2"
        steps = [e.step for e in events[name][1:]]
        assert steps == sorted(steps) == [0, 10]  # one event per logged step, in order


def test_task_scalars_equal_metrics_csv_at_every_step(exported):
    _, _, runs, events = exported
    for name in RUNS:
        metrics, logged = runs[name].metrics, scalars(events[name])
        for column in ("train_loss", "eval_loss", "eval_accuracy", "grad_norm"):
            assert logged[f"task/{column}"] == {
                int(step): f32(value) for step, value in zip(metrics["step"], metrics[column], strict=True)}


def test_wall_times_are_the_run_start_plus_its_wall_seconds(exported):
    _, _, runs, events = exported
    run = runs["tiny/cell=rnn,seed=0"]
    start = datetime.fromisoformat(run.meta["started"]).timestamp()
    expected = dict(zip(run.metrics["step"].tolist(), run.metrics["wall_seconds"].tolist(), strict=True))
    for event in events["tiny/cell=rnn,seed=0"][1:]:
        assert event.wall_time == pytest.approx(start + expected[event.step], abs=1e-6)


def test_gradient_scalars_are_the_summary_figures_at_every_step(exported):
    _, _, runs, events = exported
    for name in RUNS:
        run, logged = runs[name], scalars(events[name])
        h = run.norms["h_norms"]
        steps = run.norms["steps"].tolist()
        for figure in ("grad_ratio", "decay_rate"):
            expected = {step: f32(getattr(summaries, figure)(h[k])) for k, step in enumerate(steps)}
            assert logged[f"gradient/{figure}"] == expected
        assert logged["gradient/log10_grad_ratio"][10] == f32(math.log10(summaries.grad_ratio(h[-1])))
        for field, step in (("init", 0), ("final", 10)):
            assert logged["gradient/grad_ratio"][step] == f32(run.summary[f"grad_ratio_{field}"])
            assert logged["gradient/decay_rate"][step] == f32(run.summary[f"decay_rate_{field}"])
            assert logged["gradient/steps_in_past"][step] == f32(run.summary[f"steps_in_past_{field}"])
    lstm = scalars(events["tiny/cell=lstm,seed=0"])
    c = runs["tiny/cell=lstm,seed=0"].norms["c_norms"]
    assert lstm["gradient/c_norms/decay_rate"][10] == f32(summaries.decay_rate(c[1]))
    assert "gradient/c_norms/grad_ratio" not in scalars(events["tiny/cell=rnn,seed=0"])


def test_dynamics_scalars_are_the_summary_figures(exported):
    _, _, runs, events = exported
    for name in RUNS:
        run, logged = runs[name], scalars(events[name])
        assert logged["dynamics/lyapunov_max"][10] == f32(run.dynamics["lyapunov"][1, 0])
        for field, step in (("init", 0), ("final", 10)):
            for figure in ("lyapunov_max", "predicted_decay_rate", "decay_explained", "sigma_max",
                           "spectral_radius", "timescale_median"):
                stored = run.summary[f"{figure}_{field}"]
                if stored is None:  # the LSTM has no W_h, the RNN no keep gate: no series
                    assert f"dynamics/{figure}" not in logged, (name, figure)
                else:
                    assert logged[f"dynamics/{figure}"][step] == f32(stored), (name, figure)
    assert "dynamics/sigma_max" in scalars(events["tiny/cell=rnn,seed=0"])
    assert "dynamics/timescale_median" in scalars(events["tiny/cell=lstm,seed=0"])


def test_one_profile_image_per_logged_step(exported):
    _, _, runs, events = exported
    for name in RUNS:
        profile = images(events[name])["gradient/profile"]
        assert sorted(profile) == runs[name].norms["steps"].tolist()
        for image in profile.values():
            png = image.encoded_image_string
            assert png.startswith(b"\x89PNG\r\n\x1a\n")
            assert struct.unpack(">II", png[16:24]) == (image.width, image.height) == (640, 360)


def test_exporting_again_replaces_the_event_files(exported, tmp_path):
    root, _, _, events = exported
    again = invoke("export", root / "results" / "tiny" / "cell=rnn,seed=0", "--tensorboard", root / "tb")
    assert again.exit_code == 0, again.output
    assert again.output.splitlines()[0] == "tiny/cell=rnn,seed=0"  # a run folder: named by its experiment too
    rnn = root / "tb" / "tiny" / "cell=rnn,seed=0"
    assert scalars(read_events(rnn)) == scalars(events["tiny/cell=rnn,seed=0"])  # one file, not two


def test_underflowed_profiles_log_a_ratio_of_zero_and_no_log10(tmp_path):
    """Synthetic results: the RNN's T=16 profile has exact zeros at t = 1 from log 2 on."""
    write_run(tmp_path / "results" / "sweep", "rnn", 16, 0)
    result = invoke("export", tmp_path / "results", "--tensorboard", tmp_path / "tb")
    assert result.exit_code == 0, result.output
    logged = scalars(read_events(tmp_path / "tb" / "sweep" / "cell=rnn,length=16,seed=0"))
    assert logged["gradient/grad_ratio"][STEPS[2]] == 0.0
    assert sorted(logged["gradient/log10_grad_ratio"]) == list(STEPS[:2])
    assert not any(tag.startswith("dynamics/") for tag in logged)  # no dynamics.npz


def test_missing_extra_is_one_line_naming_it_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if it were not installed
    result = invoke("export", write_single(tmp_path / "results"), "--tensorboard", tmp_path / "tb")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "pip install 'lstm-vg[tensorboard]'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "tb").exists()


def test_no_runs_and_an_unwritable_dir_are_one_line_and_exit_2(tmp_path):
    empty = invoke("export", tmp_path, "--tensorboard", tmp_path / "tb")
    assert empty.exit_code == 2 and empty.output.count("\n") == 1 and "no runs found" in empty.output
    results = write_single(tmp_path / "results")
    (tmp_path / "file").write_text("not a folder")
    blocked = invoke("export", results, "--tensorboard", tmp_path / "file" / "tb")
    assert blocked.exit_code == 2 and blocked.output.count("\n") == 1
    assert f"{tmp_path / 'file' / 'tb'}: cannot write TensorBoard files there" in blocked.output


def test_export_loads_neither_jax_nor_torch(tmp_path):
    results = write_single(tmp_path / "results")
    code = ("import json, runpy, sys\n"
            "sys.argv = ['lstm-vg', 'export', sys.argv[1], '--tensorboard', sys.argv[2]]\n"
            "try: runpy.run_module('lstm_vg', run_name='__main__')\n"
            "except SystemExit as end: assert not end.code, end.code\n"
            "heavy = ('jax', 'optax', 'torch')\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))")
    done = subprocess.run([sys.executable, "-c", code, str(results), str(tmp_path / "tb")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []
