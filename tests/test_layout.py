"""The house rules of the package layout: the analysis side never needs the trainer or JAX, the
core never reaches out to the shell, modules stay small, and the Python API is at the package's
face and works as the README shows it."""

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT
from test_results import write_single

PACKAGE = ROOT / "lstm_vg"
HEAVY = ("jax", "jaxlib", "optax")


def imports(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside functions (relative imports resolved
    against the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def top_level_imports(path: Path) -> set[str]:
    """The modules a file imports when it is imported (not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def reaches(names: set[str], prefixes) -> set[str]:
    return {n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes)}


@pytest.mark.parametrize("path", modules("analysis"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_analysis_never_imports_training_core_or_jax(path):
    assert not reaches(imports(path), ("lstm_vg.training", "lstm_vg.core", "lstm_vg.api", *HEAVY))


@pytest.mark.parametrize("path", modules("results"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_results_format_imports_neither_side_nor_jax(path):
    sides = ("lstm_vg.training", "lstm_vg.analysis", "lstm_vg.core", "lstm_vg.api", *HEAVY)
    assert not reaches(imports(path), sides)


@pytest.mark.parametrize("path", modules("core"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_imports_only_the_core(path):
    ours = {n for n in imports(path) if n.startswith("lstm_vg")}
    assert ours <= reaches(ours, ("lstm_vg.core",))


@pytest.mark.parametrize("name", ["__init__.py", "api.py", "cli.py", "config.py", "validate.py",
                                  "experiments.py", "devices.py", "errors.py", "datasets.py"])
def test_the_shell_loads_no_trainer_or_jax_when_imported(name):
    assert not reaches(top_level_imports(PACKAGE / name), ("lstm_vg.training", "lstm_vg.core", *HEAVY))


def test_no_module_is_over_350_lines():
    lengths = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 350} == {}


def loaded_after(*argv: str, cwd: Path = ROOT) -> tuple[int, list[str], str]:
    """Run `lstm-vg ARGV` in a fresh interpreter; (exit code, the JAX/optax modules it had
    loaded when it exited, its output)."""
    code = f"""
import atexit, json, runpy, sys
heavy = {HEAVY!r}
loaded = lambda: sorted(m for m in sys.modules if m.split(".")[0] in heavy)
atexit.register(lambda: print("LOADED", json.dumps(loaded())))
sys.argv = ["lstm-vg", *{list(argv)!r}]
runpy.run_module("lstm_vg", run_name="__main__")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                          timeout=300)
    loaded = json.loads(re.search(r"^LOADED (.*)$", done.stdout, re.M)[1])
    return done.returncode, loaded, done.stdout + done.stderr


@pytest.mark.parametrize("command", [["--help"], ["report", "{results}"],
                                     ["report", "{results}", "--format", "json"],
                                     ["plot", "{results}", "--out", "{figures}"]],
                         ids=["help", "report", "report-json", "plot"])
def test_report_plot_and_help_load_neither_jax_nor_optax(tmp_path, command):
    results = write_single(tmp_path / "results")
    argv = [a.format(results=results, figures=tmp_path / "figures") for a in command]
    code, loaded, output = loaded_after(*argv)
    assert code == 0, output
    assert loaded == [], f"lstm-vg {' '.join(command)} loaded {loaded[:5]}"
    if command[0] == "plot":
        assert len(list((tmp_path / "figures").glob("*.png"))) == 3


def test_the_api_is_at_the_package_face_and_loads_no_jax():
    code = "import sys, lstm_vg; print(lstm_vg.run, lstm_vg.plot, lstm_vg.report); " \
           "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'optax')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert re.fullmatch(r"<function run at .*> <function plot at .*> <function report at .*>", first)
    assert second == "[]"


def readme_python_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


def test_the_readme_python_example_runs_as_written(tmp_path):
    """The README's example, verbatim, from a copy of the repository's configs: it trains, prints
    the report and writes the figures."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    done = subprocess.run([sys.executable, "-c", readme_python_example()], capture_output=True,
                          text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "results" / "python" / "adding"
    summaries = [json.loads(p.read_text()) for p in folder.glob("*/summary.json")]
    assert sorted(s["run"] for s in summaries) == ["cell=lstm,seed=0", "cell=lstm,seed=1",
                                                    "cell=rnn,seed=0", "cell=rnn,seed=1"]
    assert all(s["status"] == "done" and s["length"] == 20 and s["steps"] == 200 for s in summaries)
    assert "| adding | lstm | adding | 20 |" in done.stdout
    figures = sorted(p.name for p in (folder / "plots").iterdir())
    assert figures == ["adding_connectivity.png", "adding_decay-heatmap.png", "adding_gradient-decay.png",
                       "adding_learning-curves.png", "adding_spectrum.png", "adding_timescales.png"]
    assert all(f"results/python/adding/plots/{name}" in done.stdout for name in figures)
