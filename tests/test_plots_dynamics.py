"""The dynamics figures (spectrum, connectivity, timescales) and the decay plot's theory lines,
from one real tiny run of the RNN and the LSTM: the drawn data equal dynamics.npz's numbers, the
figures survive NaN/inf and missing arrays, and results without dynamics.npz plot as before."""

import dataclasses
import io
import json
import math
import shutil

import numpy as np
import pytest

from lstm_vg.analysis import grouping, plots, report

from helpers import DIAGNOSTICS, TINY, artist, gids, invoke

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TINY_RUN = (DIAGNOSTICS, "task.length=10", "model.hidden=4", "train.steps=20", "log.every=10",
            "log.eval_batch=8", "log.probe_batch=4")  # tiny.yaml: rnn and lstm, 2 seeds, adding
OLD_FIGURES = ("gradient-decay", "decay-heatmap", "learning-curves")
NEW_FIGURES = ("spectrum", "connectivity", "timescales")
DYNAMICS_FIELDS = {f"{name}_{when}" for when in ("init", "final") for name in (
    "lyapunov_max", "predicted_decay_rate", "decay_explained", "sigma_max", "spectral_radius",
    "timescale_median")}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("dynamics")
    sets = [arg for pair in TINY_RUN for arg in ("--set", pair)]
    result = invoke("run", TINY, "--out", out, *sets)
    assert result.exit_code == 0, result.output
    return out / "tiny"


@pytest.fixture(scope="module")
def runs(folder):
    return list(grouping.load_results(folder)[0][0].runs)


def stored(folder, cell, name):
    """(seeds, …) of dynamics.npz[name] of the cell's runs, read without the analysis code."""
    arrays = []
    for run in sorted(folder.glob(f"cell={cell},seed=*")):
        with np.load(run / "dynamics.npz") as archive:
            arrays.append(archive[name].astype(np.float64))
    return np.stack(arrays)


def profiles(folder, cell):
    stacks = []
    for run in sorted(folder.glob(f"cell={cell},seed=*")):
        with np.load(run / "gradients.npz") as archive:
            stacks.append(archive["h_norms"].astype(np.float64))
    return np.stack(stacks)


def with_dynamics(runs, change):
    """The runs with their dynamics replaced by change(dict) (a copy each)."""
    return [dataclasses.replace(r, dynamics=change(dict(r.dynamics))) for r in runs]


def test_plot_writes_the_dynamics_figures(folder, tmp_path):
    result = invoke("plot", folder, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    names = {f.name for f in tmp_path.iterdir()}
    assert names == {f"tiny_{f}.png" for f in OLD_FIGURES + NEW_FIGURES}
    assert all((tmp_path / n).read_bytes()[:8] == PNG_MAGIC for n in names)


@pytest.mark.parametrize("when,row", [("init", 0), ("final", -1)])
def test_lyapunov_line_falls_at_minus_median_lambda1_over_ln10_from_the_last_point(folder, runs, when, row):
    figure = plots.gradient_decay_figure(runs, "t")
    for cell in ("rnn", "lstm"):
        line = artist(figure, f"{cell}:lyapunov:{when}")
        lambda1 = np.median(stored(folder, cell, "lyapunov")[:, row, 0])
        slope = np.diff(np.log10(line.get_ydata()))  # per step t → t + 1, toward the loss
        np.testing.assert_allclose(slope, -lambda1 / math.log(10), rtol=1e-5)
        anchor = np.median(profiles(folder, cell)[:, row, -1])
        np.testing.assert_allclose(line.get_ydata()[-1], anchor, rtol=1e-6)
        assert "Lyapunov λ₁" in line.get_label() and line.get_linewidth() < 1.8


def test_pascanu_bound_is_drawn_for_the_rnn_only(folder, runs):
    figure = plots.gradient_decay_figure(runs, "t")
    for when, row in (("init", 0), ("final", -1)):
        bound = artist(figure, f"rnn:bound:{when}")
        sigma = np.median(stored(folder, "rnn", "sigma_max")[:, row])
        ratios = bound.get_ydata()[:-1] / bound.get_ydata()[1:]  # one step further back: × σ_max
        np.testing.assert_allclose(ratios, sigma, rtol=1e-6)
        assert "Pascanu bound" in bound.get_label()
    assert not {g for g in gids(figure) if g.startswith("lstm:bound")}


def test_a_growing_bound_leaves_the_axes_instead_of_stretching_them(runs):
    plain = plots.gradient_decay_figure([dataclasses.replace(r, dynamics=None) for r in runs], "t")
    steep = with_dynamics(runs, lambda d: d | {"sigma_max": np.full_like(d["sigma_max"], 50.0)}
                          if "sigma_max" in d else d)
    figure = plots.gradient_decay_figure(steep, "t")
    assert figure.axes[0].get_ylim() == plain.axes[0].get_ylim()
    bound = artist(figure, "rnn:bound:init")
    assert bound.get_ydata()[0] > figure.axes[0].get_ylim()[1] and bound.get_clip_on()


def test_spectrum_draws_median_exponents_and_the_rnn_matrix(folder, runs):
    figure = plots.spectrum_figure(runs, "t")
    for cell in ("rnn", "lstm"):
        exponents = stored(folder, cell, "lyapunov")
        np.testing.assert_allclose(artist(figure, f"{cell}:lyapunov:1").get_ydata(),
                                   np.median(exponents[:, :, 0], axis=0), rtol=1e-6)
        k = exponents.shape[2]
        np.testing.assert_allclose(artist(figure, f"{cell}:lyapunov:{k}").get_ydata(),
                                   np.median(exponents[:, :, -1], axis=0), rtol=1e-6)
    np.testing.assert_allclose(artist(figure, "rnn:sigma_max").get_ydata(),
                               np.median(stored(folder, "rnn", "sigma_max"), axis=0))
    assert "rnn:spectral_radius" in gids(figure) and "lstm:sigma_max" not in gids(figure)
    assert all(z.get_ydata()[0] == 0 for ax in figure.axes for z in ax.get_lines() if z.get_gid() == "zero")


def test_connectivity_shows_the_first_seed_and_the_adding_markers(folder, runs):
    figure = plots.connectivity_figure(runs, "t")
    for cell in ("rnn", "lstm"):
        mean = stored(folder, cell, "connectivity")[0]  # seed 0
        mesh = artist(figure, f"{cell}:connectivity")
        np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(mean.shape), np.log10(mean),
                                   rtol=1e-6)
        examples = stored(folder, cell, "connectivity_examples")[0]
        np.testing.assert_allclose(artist(figure, f"{cell}:example:final").get_ydata(), examples[-1, 0])
        np.testing.assert_allclose(artist(figure, f"{cell}:example:init").get_ydata(), examples[0, 0])
        markers = [a.get_xdata()[0] for ax in figure.axes for a in ax.get_lines()
                   if a.get_gid() == f"{cell}:marker"]
        inputs = stored(folder, cell, "connectivity_inputs")[0, 0]
        assert markers == list(np.flatnonzero(inputs[:, 1] == 1) + 1) and len(markers) == 2
        assert "seed 0" in mesh.axes.get_title()


def test_timescale_histogram_is_for_the_lstm_only_against_the_chrono_prior(folder, runs):
    figure = plots.timescale_figure(runs, "t")
    assert not {g for g in gids(figure) if g.startswith("rnn:")}
    for when, row in (("init", 0), ("final", -1)):
        stairs = artist(figure, f"lstm:timescale:{when}")
        density, edges = stairs.get_data().values, stairs.get_data().edges
        tau = stored(folder, "lstm", "timescale")[:, row].ravel()
        assert np.sum(density * np.diff(np.log10(edges))) == pytest.approx(np.isfinite(tau).mean())
    prior = artist(figure, "lstm:chrono_prior")
    assert (prior.get_xdata()[0], prior.get_xdata()[-1]) == (2, 10)  # T_max = T' = 10 (no chrono)
    assert "{" not in prior.get_label() and "U(2, 10)" in prior.get_label()


def test_figures_survive_nan_inf_and_missing_arrays(runs):
    def poison(array):  # a diverged run: a third NaN, a third ±inf, the rest as logged
        where = np.arange(array.size).reshape(array.shape) % 3
        return np.where(where == 0, np.nan, np.where(where == 1, np.inf * np.sign(array - 0.5), array))

    kept = ("steps", "connectivity_inputs")
    broken = with_dynamics(runs, lambda d: {k: v if k in kept else poison(v.astype(np.float64))
                                            for k, v in d.items()})
    for draw in (plots.gradient_decay_figure, plots.spectrum_figure, plots.connectivity_figure,
                 plots.timescale_figure):
        draw(broken, "t").savefig(io.BytesIO(), format="png")
    bare = with_dynamics(runs, lambda d: {"steps": d["steps"]})
    assert plots.dynamics_figures((), bare, "t") == {}
    assert not {g for g in gids(plots.gradient_decay_figure(bare, "t")) if ":lyapunov" in g or ":bound" in g}


def test_results_without_dynamics_plot_as_before(folder, tmp_path):
    old = tmp_path / "tiny"
    shutil.copytree(folder, old, ignore=shutil.ignore_patterns("plots"))
    for file in old.glob("*/dynamics.npz"):
        file.unlink()
    plotted = plots.plot_path(old, out=tmp_path / "figs")
    assert [f.name for f in plotted.files] == [f"tiny_{f}.png" for f in OLD_FIGURES]
    assert len(plotted.notes) == 1 and "no sweep figure" in plotted.notes[0]  # as before: no new note
    for file in old.glob("*/summary.json"):  # older summaries lack the dynamics fields too
        summary = json.loads(file.read_text())
        file.write_text(json.dumps({k: v for k, v in summary.items() if k not in DYNAMICS_FIELDS}))
    experiment = grouping.load_results(old)[0][0]
    assert all(r.dynamics is None for r in experiment.runs)
    figure = plots.gradient_decay_figure(list(experiment.runs), "t")
    assert not {g for g in gids(figure) if ":lyapunov" in g or ":bound" in g}
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert len(texts) == 4 and not any("λ₁" in t for t in texts)
    table, skipped = report.report_path(old, "json")  # and they still report, the new columns empty
    rows = json.loads(table)
    assert not skipped and len(rows) == 2
    assert all(r["predicted_decay_rate_init_median"] is None and r["grad_ratio_init_median"] is not None
               for r in rows)
