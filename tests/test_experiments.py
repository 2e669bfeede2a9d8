"""Experiments: `lstm-vg reproduce` runs what is missing, reuses what is done, checks claims."""

import json
from pathlib import Path

import pytest

from lstm_vg import experiments
from lstm_vg.errors import UserError

from helpers import invoke

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
CLAIMS = """claims:
  - max(steps | cell=lstm) == 20
  - count(solved | cell=rnn, length=10) <= 2
  - min(final_eval_loss) > 0
"""


def experiment_file(tmp_path, claims=CLAIMS, steps=20, name="tinyexp") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""name: {name}
configs:
  - base: {TINY}
    name: small
    seeds: 1
    train: {{steps: {steps}}}
{claims}""")
    return path


def summaries(folder: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in folder.glob("*/*/summary.json")}


def test_reproduce_trains_then_reuses_finished_runs_and_checks_claims(tmp_path):
    out = tmp_path / "out"
    first = invoke("reproduce", experiment_file(tmp_path), "--out", out)
    assert first.exit_code == 0, first.output
    assert "3 of 3 claims hold" in first.output
    folder = out / "tinyexp"
    assert sorted(summaries(folder)) == ["cell=lstm,seed=0", "cell=rnn,seed=0"]
    stamps = {p: p.stat().st_mtime_ns for p in folder.glob("*/*/summary.json")}

    again = invoke("reproduce", experiment_file(tmp_path), "--out", out)
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*/*/summary.json")} == stamps

    checked = invoke("report", folder, "--check")
    assert checked.exit_code == 0 and "3 of 3 claims hold" in checked.output


def test_a_changed_config_is_trained_again(tmp_path):
    out = tmp_path / "out"
    assert invoke("reproduce", experiment_file(tmp_path), "--out", out).exit_code == 0
    longer = experiment_file(tmp_path, claims="claims:\n  - max(steps) == 30\n", steps=30)
    result = invoke("reproduce", longer, "--out", out)
    assert result.exit_code == 0, result.output
    assert {s["steps"] for s in summaries(out / "tinyexp").values()} == {30}


def test_a_failing_claim_exits_1_and_says_which(tmp_path):
    path = experiment_file(tmp_path, claims="claims:\n  - min(final_eval_loss) < 0\n"
                                            "  - count(solved | cell=gru) == 0\n")
    result = invoke("reproduce", path, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "FAILS" in result.output and "no finished run matches cell=gru" in result.output
    assert "0 of 2 claims hold" in result.output
    assert invoke("report", tmp_path / "out" / "tinyexp", "--check").exit_code == 1


def test_report_check_needs_the_saved_experiment(tmp_path):
    assert invoke("run", TINY, "--out", tmp_path, "--steps", 10).exit_code == 0
    result = invoke("report", tmp_path / "tiny", "--check")
    assert result.exit_code == 2 and "experiment.yaml: no such file" in result.output


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: x\nconfig: []\n", "config: unknown key; did you mean 'configs'?"),
        ("name: x\nconfigs: []\n", "configs: expected a non-empty list"),
        ("name: x\nconfigs: [{name: a}, {name: a}]\n", "name 'a' is used twice"),
        ("name: x\nconfigs: [{model: {hiden: 3}}]\n", "configs[0]: model.hiden: unknown key"),
        ("name: x\nconfigs: [{base: nowhere.yaml}]\n", "nowhere.yaml: no such file"),
        ("name: x\nconfigs: [{}]\nclaims: [max(steps)]\n", "claims[0]"),
        ("name: x\nconfigs: [{}]\nclaims: max(steps) > 1\n", "claims: expected a list"),
        ("[1, 2]\n", "expected a mapping with keys name"),
    ],
)
def test_bad_experiment_files_are_one_line_user_errors(tmp_path, text, expected):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as error:
        experiments.load(path)
    assert expected in str(error.value) and "\n" not in str(error.value)
    result = invoke("reproduce", path, "--out", tmp_path)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


def test_shipped_experiments_load():
    for path in (Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"):
        experiment = experiments.load(path)
        assert experiment.configs and experiment.claims


def test_a_sweep_in_an_entry_replaces_the_base_sweep(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(f"name: x\nconfigs:\n  - base: {TINY}\n    model: {{cell: lstm}}\n"
                    f"    sweep: {{model.forget_bias: [0.0, 1.0]}}\nclaims: []\n")
    (c,) = experiments.load(path).configs
    assert c.sweep == (("model.forget_bias", (0.0, 1.0)),) and c.model.cell == "lstm"
    assert c.model.hidden == 8  # the rest of the base is kept


def test_runs_saved_before_a_new_config_key_existed_are_still_reused(tmp_path):
    out = tmp_path / "out"
    assert invoke("reproduce", experiment_file(tmp_path), "--out", out).exit_code == 0
    for saved in (out / "tinyexp").glob("*/*/config.yaml"):  # as an older lstm-vg wrote it
        text = saved.read_text()
        saved.write_text(text.replace("  variant: standard\n", ""))
        assert saved.read_text() != text
    stamps = {p: p.stat().st_mtime_ns for p in (out / "tinyexp").glob("*/*/summary.json")}
    assert invoke("reproduce", experiment_file(tmp_path), "--out", out).exit_code == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "tinyexp").glob("*/*/summary.json")} == stamps
