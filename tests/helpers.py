"""Shared by the tests: the real CLI in process, comparing results folders (the tests that
check two ways of training agree), and finding a figure's artists by gid."""

import csv
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from lstm_vg.cli import app

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"  # without the diagnostics (they cost a tiny run ~3 s to compile)
# Every diagnostic, one `--set` value: the tiny config with dynamics.npz, for the tests that read it.
DIAGNOSTICS = "log.diagnostics=[lyapunov, recurrent_matrix, connectivity, gates]"


def invoke(*args):
    """The real CLI, in this process: `lstm-vg ARGS` (paths and numbers as text)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def read_rows(folder: Path) -> list[dict]:
    with open(folder / "metrics.csv") as file:
        return list(csv.DictReader(file))


def assert_same_results(a: Path, b: Path, runs: int) -> None:
    """Both experiment folders hold the same `runs` runs with the same metrics (but for
    wall_seconds), params, gradient profiles and dynamics diagnostics, bit for bit."""
    names = sorted(p.name for p in a.iterdir() if p.is_dir())
    assert names == sorted(p.name for p in b.iterdir() if p.is_dir()) and len(names) == runs
    for run in names:
        rows_a, rows_b = read_rows(a / run), read_rows(b / run)
        for row in rows_a + rows_b:
            del row["wall_seconds"]
        assert rows_a == rows_b, run
        for arrays in ("params.npz", "gradients.npz", "dynamics.npz"):
            if arrays == "dynamics.npz" and not (a / run / arrays).exists():  # diagnostics off
                assert not (b / run / arrays).exists(), run
                continue
            with np.load(a / run / arrays) as x, np.load(b / run / arrays) as y:
                assert sorted(x) == sorted(y)
                for key in x:
                    np.testing.assert_array_equal(x[key], y[key], err_msg=f"{run}/{arrays}/{key}")


def artist(figure, gid):
    """The one artist with this gid in the figure."""
    found = [a for ax in figure.axes for a in ax.get_children() if a.get_gid() == gid]
    assert len(found) == 1, f"{gid}: {len(found)} artists"
    return found[0]


def gids(figure) -> set:
    """Every gid set on an artist of the figure's axes."""
    return {a.get_gid() for ax in figure.axes for a in ax.get_children() if a.get_gid()}
