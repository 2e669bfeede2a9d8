"""Figures from synthetic results folders: the plotted data equal the stored numbers (read back
through the matplotlib objects), zeros are marked, the files are valid images, and `lstm-vg plot`
prints what it wrote and fails in one line on folders with nothing usable."""

import numpy as np
import pytest
from matplotlib.image import imread

from lstm_vg.analysis import grouping, plots
from lstm_vg.analysis.plots import style

from helpers import artist, gids, invoke
from test_results import LENGTHS, SEEDS, STEPS, metric_rows, profile, write_run, write_single, write_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return grouping.load_results(write_sweep(tmp_path_factory.mktemp("results")))[0][0]


def setting_runs(experiment, length):
    return experiment.settings()[(("task.length", length),)]


def median_profile(cell, length, log):
    return np.median([profile(cell, length, s, log) for s in SEEDS], axis=0).astype(np.float64)


def test_gradient_decay_lines_are_the_median_over_seeds(sweep):
    figure = plots.gradient_decay_figure(setting_runs(sweep, 12), "adding, T=12")
    for cell in ("rnn", "lstm"):
        for when, log in (("init", 0), ("final", -1)):
            line = artist(figure, f"{cell}:h_norms:{when}")
            expected = median_profile(cell, 12, log % len(STEPS))
            np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 13))
            np.testing.assert_allclose(line.get_ydata(), np.where(expected > 0, expected, np.nan), rtol=1e-6)
    np.testing.assert_allclose(artist(figure, "lstm:c_norms:final").get_ydata(),
                               2 * median_profile("lstm", 12, 3),
                               rtol=1e-6)
    assert "rnn:c_norms:init" not in gids(figure)  # the RNN has no cell state
    assert all(ax.get_yscale() == "log" for ax in figure.axes)


def test_exact_zeros_are_marked_on_the_bottom_axis_not_dropped(sweep):
    figure = plots.gradient_decay_figure(setting_runs(sweep, 16), "adding, T=16")
    markers = artist(figure, "rnn:h_norms:final:zeros")
    np.testing.assert_array_equal(markers.get_xdata(), [1, 2, 3, 4])  # t = 1 … 16 // 4
    assert "exact" in markers.get_label() and "underflow" in markers.get_label()
    assert "rnn:h_norms:init:zeros" not in gids(figure)  # no zero at step 0: no empty marker set
    legend_texts = [t.get_text() for ax in figure.axes if ax.get_legend()
                    for t in ax.get_legend().get_texts()]
    assert any("underflow" in text for text in legend_texts)


def test_heatmap_colours_are_log10_of_the_median_and_zeros_fall_below_the_scale(sweep):
    figure = plots.decay_heatmap_figure(setting_runs(sweep, 16), "adding, T=16")
    for cell in ("rnn", "lstm"):
        mesh = artist(figure, f"{cell}:heatmap")
        median = np.median([[profile(cell, 16, s, k) for k in range(len(STEPS))] for s in SEEDS], axis=0)
        drawn = np.asarray(mesh.get_array()).reshape(len(STEPS), 16)
        zero = median == 0
        np.testing.assert_allclose(drawn[~zero], np.log10(median[~zero].astype(np.float64)), rtol=1e-6)
        assert (drawn[zero] < mesh.norm.vmin).all()  # the 'under' colour: white
        assert zero.sum() == {"rnn": 2 * 4, "lstm": 0}[cell]  # logs 2 and 3, t = 1 … 4
    assert tuple(mesh.cmap.get_under()[:3]) == (1.0, 1.0, 1.0)
    assert any("underflow" in t.get_text() for legend in figure.legends for t in legend.get_texts())


def test_learning_curves_show_medians_baseline_dashed_and_threshold(sweep):
    figure = plots.learning_curves_figure(setting_runs(sweep, 8), "adding, T=8")
    assert len(figure.axes) == 2  # adding: train and eval loss; accuracy does not decide "solved"
    for cell in ("rnn", "lstm"):
        line = artist(figure, f"{cell}:eval_loss")
        expected = np.median([[r["eval_loss"] for r in metric_rows(cell, s, "adding")] for s in SEEDS],
                             axis=0)
        np.testing.assert_array_equal(line.get_xdata(), STEPS)
        np.testing.assert_allclose(line.get_ydata(), expected)
    baselines = [a for ax in figure.axes for a in ax.get_lines() if a.get_gid() == "baseline"]
    assert len(baselines) == 2 and all(b.get_linestyle() == "--" for b in baselines)
    assert all(np.allclose(b.get_ydata(), 1 / 6) for b in baselines)
    threshold = artist(figure, "threshold")
    assert threshold.get_ydata()[0] == 0.01 and "≤ 0.01" in threshold.get_label()
    assert artist(figure, "threshold").axes is artist(figure, "rnn:eval_loss").axes


def test_copy_learning_curves_add_accuracy_with_its_threshold(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path / "copy", "lstm", 5, seed, task="copy", sweep=("model.cell",))
    runs = grouping.load_results(tmp_path / "copy")[0][0].runs
    figure = plots.learning_curves_figure(list(runs), "copy, T=5")
    assert len(figure.axes) == 3
    accuracy = artist(figure, "lstm:eval_accuracy")
    expected = np.median([[r["eval_accuracy"] for r in metric_rows("lstm", s, "copy")] for s in (0, 1)],
                         axis=0)
    np.testing.assert_allclose(accuracy.get_ydata(), expected)
    assert artist(figure, "threshold").get_ydata()[0] == 0.99
    assert artist(figure, "threshold").axes is accuracy.axes
    assert [b.get_ydata()[0] for ax in figure.axes for b in ax.get_lines() if b.get_gid() == "baseline"] == \
        pytest.approx([10 * np.log(8) / 25] * 2)


def test_sweep_figure_plots_the_summaries_against_T(sweep):
    figure = plots.sweep_figure(list(sweep.runs), "task.length", "adding")
    final = {c: [[r["eval_loss"] for r in metric_rows(c, s, "adding")][-1] for s in SEEDS]
             for c in ("rnn", "lstm")}
    for cell in ("rnn", "lstm"):
        loss = artist(figure, f"{cell}:final_eval_loss")
        np.testing.assert_array_equal(loss.get_xdata(), LENGTHS)
        np.testing.assert_allclose(loss.get_ydata(), [np.median(final[cell])] * len(LENGTHS))
        ratio = artist(figure, f"{cell}:grad_ratio_init")
        expected = [np.median([profile(cell, T, s, 0)[0] / profile(cell, T, s, 0)[-1] for s in SEEDS])
                    for T in LENGTHS]
        np.testing.assert_allclose(ratio.get_ydata(), expected, rtol=1e-5)
    np.testing.assert_allclose(artist(figure, "lstm:steps_to_solve").get_ydata(), [30] * len(LENGTHS))
    assert np.isnan(artist(figure, "rnn:steps_to_solve").get_ydata()).all()
    np.testing.assert_array_equal(artist(figure, "rnn:unsolved").get_xdata(), LENGTHS)  # marked, not dropped
    np.testing.assert_allclose(artist(figure, "baseline").get_ydata(), [1 / 6] * len(LENGTHS))
    assert "T" in figure.get_suptitle() and "median of 3 seeds" in figure.get_suptitle()


def test_each_cell_has_one_colour_in_every_figure(sweep):
    runs = setting_runs(sweep, 12)
    figures = [plots.gradient_decay_figure(runs, "t"), plots.learning_curves_figure(runs, "t"),
               plots.sweep_figure(list(sweep.runs), "task.length", "t")]
    for cell in ("rnn", "lstm"):
        colours = {a.get_color() for f in figures for ax in f.axes for a in ax.get_lines()
                   if (a.get_gid() or "").startswith(f"{cell}:")}
        assert colours == {style.CELL_COLOURS[cell]}
    mine = "my_cells.py:Mine"  # a cell of the user's: a colour of its own, the same every time
    assert style.cell_colour(mine) == style.cell_colour(mine) not in style.CELL_COLOURS.values()
    # the solved threshold's line is no cell's colour
    assert style.THRESHOLD_STYLE["color"] not in {*style.CELL_COLOURS.values(), *style.OTHER_COLOURS}


def test_titles_name_the_task_and_T(sweep):
    figures, _ = plots.experiment_figures(sweep)
    for stem, figure in figures.items():
        assert "adding" in figure.get_suptitle(), stem
        assert ("T=" in figure.get_suptitle()) or stem.startswith("sweep-"), stem


@pytest.fixture(scope="module")
def plotted_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    write_sweep(root)
    write_single(root)
    return root, invoke("plot", root)


def test_plot_writes_valid_pngs_next_to_each_experiment_and_prints_them(plotted_tree):
    root, result = plotted_tree
    assert result.exit_code == 0, result.output
    kinds = ("gradient-decay", "decay-heatmap", "learning-curves")
    expected = {root / "single" / "plots" / f"single_{f}.png" for f in kinds}
    expected |= {root / "sweep" / "plots" / f"sweep_{f}_length={T}.png" for f in kinds for T in LENGTHS}
    expected |= {root / "sweep" / "plots" / "sweep_sweep-length.png"}
    written = set((root / "single" / "plots").iterdir()) | set((root / "sweep" / "plots").iterdir())
    assert written == expected
    for file in expected:
        assert str(file) in result.output
        assert file.read_bytes()[:8] == PNG_MAGIC
        image = imread(file)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
    assert "no sweep figure" in result.output  # the single-T experiment: a note, not a failure


def test_plot_out_and_format_options(tmp_path):
    write_single(tmp_path / "r", seeds=(0,))
    result = invoke("plot", tmp_path / "r", "--out", tmp_path / "figs", "--format", "svg")
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "figs").iterdir())
    assert [f.name for f in files] == ["single_decay-heatmap.svg", "single_gradient-decay.svg",
                                       "single_learning-curves.svg"]
    assert all(f.read_text().lstrip().startswith("<?xml") for f in files)
    assert not (tmp_path / "r" / "single" / "plots").exists()
    bad = invoke("plot", tmp_path / "r", "--format", "gif")
    assert bad.exit_code == 2


def test_a_running_run_and_missing_profiles_are_notes(tmp_path):
    write_run(tmp_path / "live", "rnn", 6, 0, sweep=("model.cell",))
    write_run(tmp_path / "live", "lstm", 6, 0, sweep=("model.cell",), summary=False, norms=False)
    plotted = plots.plot_path(tmp_path / "live", fmt="png")
    assert [f.name for f in plotted.files] == ["live_gradient-decay.png", "live_decay-heatmap.png",
                                               "live_learning-curves.png"]
    assert any("still running" in n and "cell=lstm,seed=0" in n for n in plotted.notes)
    write_run(tmp_path / "only", "lstm", 6, 0, sweep=("model.cell",), summary=False, norms=False)
    notes = plots.plot_path(tmp_path / "only").notes
    assert any("no gradient profiles yet" in n for n in notes)
    assert any("no sweep figure" in n and "no run has finished" in n for n in notes)


def test_plot_on_an_empty_folder_exits_2_with_one_line(tmp_path):
    result = invoke("plot", tmp_path)
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "no runs found" in result.output
    assert "Traceback" not in result.output


def test_plot_skips_corrupt_runs_with_a_warning(tmp_path):
    folder = write_single(tmp_path / "r", seeds=(0, 1))
    (folder / "cell=rnn,seed=1" / "summary.json").write_text("{not json")
    npz = folder / "cell=lstm,seed=1" / "gradients.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    result = invoke("plot", folder)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert any("cell=rnn,seed=1/summary.json: not valid JSON" in w for w in warnings)
    assert any("cell=lstm,seed=1/gradients.npz: unreadable, truncated" in w for w in warnings)
    assert (folder / "plots" / "single_gradient-decay.png").read_bytes()[:8] == PNG_MAGIC


def test_plot_with_nothing_readable_exits_2(tmp_path):
    folder = write_run(tmp_path / "e", "rnn", 5, 0, sweep=("model.cell",))
    (folder / "summary.json").write_text("")
    result = invoke("plot", tmp_path)
    assert result.exit_code == 2
    assert "summary.json: not valid JSON" in result.output and result.output.strip().count("\n") == 0
