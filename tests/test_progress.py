"""The live gradient profile: the sparkline and ratio against hand-computed cases, the plain lines
of a run without a terminal (the real CLI), and the live display on a terminal."""

import io
import re

import numpy as np
import pytest
from rich.console import Console

from lstm_vg import progress
from lstm_vg.progress import BLOCKS, log10_profile, profile_text, progress_for, ratio, sparkline

from helpers import TINY, invoke


def test_the_scale_is_eight_blocks_of_two_decades_from_1e_minus_14_to_1e2():
    assert (progress.LOW, progress.HIGH, BLOCKS) == (-14, 2, "▁▂▃▄▅▆▇█")


def test_a_flat_profile_is_one_repeated_block():
    p = np.full(25, -3.0)  # -3 lies in [-4, -2): the sixth block
    assert sparkline(p) == "▆" * 25
    assert ratio(p) == 1.0


def test_a_geometric_decay_is_monotone_blocks_two_decades_each():
    p = np.arange(-16, 0.5, 0.5)  # 33 steps, half a decade a step: 4 below the scale, 4 a block, 0 at the top
    assert sparkline(p) == "    ▁▁▁▁▂▂▂▂▃▃▃▃▄▄▄▄▅▅▅▅▆▆▆▆▇▇▇▇█"
    assert ratio(p) == pytest.approx(1e-16)


def test_a_long_profile_is_down_sampled_to_forty_columns_by_their_means():
    p = np.repeat(np.arange(-13.0, 2, 2), 10)  # 80 steps: each block's middle, 10 steps each
    assert sparkline(p) == "".join(b * 5 for b in BLOCKS)  # columns of 2 steps
    assert sparkline([-13.0, -11.0], width=1) == "▂"  # the mean, -12, starts the second block
    decay = np.linspace(-30, 1, 100)
    line = sparkline(decay)
    assert len(line) == 40 and line.startswith(progress.BELOW) and line.endswith("█")
    order = [-1 if c == progress.BELOW else BLOCKS.index(c) for c in line]
    assert order == sorted(order)


def test_zeros_nan_and_inf_are_shown_not_hidden():
    norms = np.array([[0.0, 1e-3, np.nan, np.inf, 1e-3],
                      [1e-3, 1e-3, np.nan, 1.0, 1e-3]], np.float32)
    p = log10_profile(norms)
    np.testing.assert_allclose(p[:4], [-np.inf, -3, np.nan, np.inf], rtol=1e-7)  # float32 1e-3
    assert sparkline(p) == f"{progress.BELOW}▆{progress.MISSING}{progress.ABOVE}▆"
    assert sparkline([]) == ""
    assert ratio(p) == 0.0  # ‖∂L/∂s_1‖ underflowed to 0 in a run: the geometric mean is 0
    assert ratio([-2.0, -np.inf]) is None and ratio([np.nan, 0.0]) is None
    assert "‖∂L/∂h_1‖/‖∂L/∂h_T‖ –" in profile_text("h_norms", [[1e-3, 0.0]])
    assert "‖∂L/∂h_1‖/‖∂L/∂h_T‖ 0  ‖∂L/∂h_t‖ t=1…2 ▕ ▆▏" in profile_text("h_norms", [[0.0, 1e-3]])


def test_a_run_without_a_number_is_left_out_of_the_mean_over_runs():
    p = log10_profile([[np.nan, 1e-2], [1e-4, 1e-2], [1e-6, 1e-2]])
    np.testing.assert_allclose(p, [-5, -2])
    assert ratio(p) == pytest.approx(1e-3)  # the geometric mean of the runs' ratios


def test_the_line_names_the_state_the_signal_travels_through():
    text = profile_text("x_norms", [1e-4, 1e-3, 1e-2])  # the LRU's headline profile
    # -4 and -3 lie in [-4, -2), -2 starts [-2, 0)
    assert text == "‖∂L/∂x_1‖/‖∂L/∂x_T‖ 1.0e-02  ‖∂L/∂x_t‖ t=1…3 ▕▆▆▇▏ 10^-14…10^2"


def test_a_plain_line_per_log_with_the_loss_of_the_chunk_that_reached_it():
    out = io.StringIO()
    display = progress_for(Console(file=out, width=200))
    assert isinstance(display, progress.PlainProgress)
    display.start("rnn · test", 20, 2)
    display.profile(0, "h_norms", [[1e-3, 1e-1]])
    display.advance(5, 0.5)
    display.advance(10, 0.25)
    display.profile(10, "h_norms", [[1e-5, 1e-1]])
    display.stop()
    lines = out.getvalue().splitlines()
    assert lines[0] == progress.LEGEND
    assert lines[1] == "rnn · test  step 0/20  loss –  " + profile_text("h_norms", [[1e-3, 1e-1]])
    assert lines[2] == "rnn · test  step 10/20  loss 0.2500  " + profile_text("h_norms", [[1e-5, 1e-1]])
    assert re.fullmatch(r"rnn · test  step 10/20 after \d+\.\d s", lines[3]) and len(lines) == 4


def test_a_terminal_gets_the_live_bar_with_the_profile_line_under_it():
    out = io.StringIO()
    display = progress_for(Console(file=out, force_terminal=True, width=200))
    assert isinstance(display, progress.RichProgress)
    display.start("rnn · test", 20, 2)
    display.advance(10, 0.25)
    display.profile(10, "h_norms", [[1e-5, 1e-3, 1e-1]])
    display.stop()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # rich's cursor moves and colours
    last = text.splitlines()[-2:]  # the final frame: the bar, then the profile under it
    assert "rnn · test" in last[0] and "step 10/20" in last[0] and "loss 0.2500" in last[0]
    assert last[1].rstrip() == "  step 10: ‖∂L/∂h_1‖/‖∂L/∂h_T‖ 1.0e-04  ‖∂L/∂h_t‖ t=1…3 ▕▅▆▇▏ 10^-14…10^2"


def test_a_run_in_a_pipe_prints_one_plain_line_per_log_from_the_logged_profiles(tmp_path, monkeypatch):
    """The real CLI (its output captured: not a terminal) on the tiny config, one cell, two
    seeds: a line per log that shows what gradients.npz holds, and one at the end."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    result = invoke("run", TINY, "--out", tmp_path, "--seeds", 2, "--steps", 10,
                    "--set", "sweep.model.cell=[lstm]")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "━" not in result.output  # no bar redrawn into the log
    lines = [line for line in result.output.splitlines() if line.startswith("lstm · adding T=10")]
    assert len(lines) == 3  # steps 0 and 10, then the end
    norms = []
    for seed in range(2):
        with np.load(tmp_path / "tiny" / f"cell=lstm,seed={seed}" / "gradients.npz") as g:
            norms.append(g["h_norms"])
    norms = np.stack(norms, axis=1)  # (logs, runs, T)
    assert lines[0].endswith("step 0/10  loss –  " + profile_text("h_norms", norms[0]))
    assert re.search(r"step 10/10  loss \d\.\d{4}  ", lines[1])
    assert lines[1].endswith(profile_text("h_norms", norms[1]))
    first_over_last = np.exp(np.mean(np.log(norms[1][:, 0] / norms[1][:, -1])))
    assert f"‖∂L/∂h_1‖/‖∂L/∂h_T‖ {first_over_last:.1e}" in lines[1]
    assert re.search(r"step 10/10 after \d+\.\d s$", lines[2])
