"""The host loop: interrupted runs resume from their checkpoints exactly where they stopped."""

import json

import numpy as np
import pytest

from lstm_vg import config
from lstm_vg.training import checkpoint, loop

from helpers import DIAGNOSTICS, TINY, assert_same_results


class StopAt:
    """A progress display that raises KeyboardInterrupt (as Ctrl-C would) at one step of the
    first batch, and records the step each batch's first chunk reached."""

    def __init__(self, step: int | None = None):
        self.step, self.first_steps, self.fresh = step, [], True

    def start(self, label, total_steps, runs):
        self.fresh = True

    def advance(self, step, mean_train_loss):
        if self.fresh:
            self.first_steps.append(step)
            self.fresh = False
        if step == self.step:
            raise KeyboardInterrupt

    def stop(self):
        pass


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder, _ = loop.run_experiment(config.load(TINY, [DIAGNOSTICS]), tmp_path_factory.mktemp("whole"))
    return folder


@pytest.mark.parametrize("stop_at", [5, 10, 15])
def test_resumed_runs_equal_uninterrupted_runs_bit_for_bit(uninterrupted, tmp_path, stop_at):
    """Ctrl-C after a chunk between logs (5, 15) or right after a log (10), then resume: the
    interrupted batch continues from its checkpoint, the batch never started starts, and every
    run ends with the metrics, params and gradient profiles of an uninterrupted run."""
    c = config.load(TINY, [DIAGNOSTICS])
    with pytest.raises(KeyboardInterrupt):
        loop.run_experiment(c, tmp_path, progress=StopAt(stop_at))
    cut = tmp_path / "tiny"
    interrupted = [p for p in cut.iterdir() if (p / checkpoint.FILE).exists()]
    assert len(interrupted) == 2  # the first batch's two seeds
    for run in interrupted:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "interrupted" and summary["steps"] == stop_at // 10 * 10
    progress = StopAt()
    _, summaries = loop.run_experiment(c, tmp_path, progress=progress, resume=True)
    assert progress.first_steps == [stop_at + 5, 5]  # resumed, then fresh
    assert [s["status"] for s in summaries] == ["done"] * 4
    assert not any((p / checkpoint.FILE).exists() for p in cut.iterdir())
    assert_same_results(uninterrupted, cut, runs=4)
    for run in cut.iterdir():  # the diagnostics were compared above, at every logged step
        with np.load(run / "dynamics.npz") as dynamics:
            assert {"lyapunov", "connectivity", "connectivity_inputs"} <= set(dynamics)
            assert dynamics["lyapunov"].shape[0] == dynamics["steps"].size == 3


def test_resume_keeps_finished_runs_untouched(uninterrupted, tmp_path):
    c = config.load(TINY)
    folder, _ = loop.run_experiment(c, tmp_path)
    before = {p.name: (p / "summary.json").read_text() for p in folder.iterdir()}
    progress = StopAt()
    _, summaries = loop.run_experiment(c, tmp_path, progress=progress, resume=True)
    assert summaries == [] and progress.first_steps == []
    assert before == {p.name: (p / "summary.json").read_text() for p in folder.iterdir()}


def test_an_interrupt_before_the_first_log_leaves_a_run_that_resume_starts_again(uninterrupted, tmp_path,
                                                                                  monkeypatch):
    """Ctrl-C while step 0 is evaluated (the first compile): KeyboardInterrupt, not a traceback
    from summarising no rows; the folders keep config.yaml and meta.json but no summary.json, and
    a resume trains them from the start to the uninterrupted results."""
    c = config.load(TINY, [DIAGNOSTICS])

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(loop, "logged_rows", interrupted)
        with pytest.raises(KeyboardInterrupt):
            loop.run_experiment(c, tmp_path)
    started = sorted((tmp_path / "tiny").iterdir())
    assert len(started) == 2  # the first batch's two seeds
    for run in started:
        assert not (run / "summary.json").exists() and (run / "config.yaml").exists()
        assert json.loads((run / "meta.json").read_text())["finished"]
    _, summaries = loop.run_experiment(c, tmp_path, resume=True)
    assert [s["status"] for s in summaries] == ["done"] * 4
    assert_same_results(uninterrupted, tmp_path / "tiny", runs=4)
