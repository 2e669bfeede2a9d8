"""Config loading, validation, overrides and sweep expansion."""

from pathlib import Path

import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lstm_vg import config
from lstm_vg.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str, name="exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(tmp_path, text: str, *overrides) -> str:
    path = write(tmp_path, text)
    with pytest.raises(UserError) as error:
        config.load(path, overrides)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(str(path)) or message.startswith("--set")
    return message


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    c = config.load(path)
    assert c.name == yaml.safe_load(path.read_text()).get("name", path.stem)


def test_defaults_fill_missing_sections(tmp_path):
    c = config.load(write(tmp_path, "task: {length: 30}\n"))
    assert c.name == "exp"
    assert (c.task.name, c.task.length) == ("adding", 30)
    assert (c.model.cell, c.model.hidden, c.model.forget_bias) == ("lstm", 128, 1.0)
    assert (c.train.optimizer, c.train.lr, c.train.clip) == ("adam", 1e-3, 1.0)
    assert c.seeds == (0,)
    assert c.chunk_steps == c.log.every


def test_unknown_key_suggests_the_closest(tmp_path):
    message = load_error(tmp_path, "model: {hiden: 3}\n")
    assert "model.hiden: unknown key; did you mean 'hidden'?" in message


def test_unknown_section_suggests_the_closest(tmp_path):
    assert "did you mean 'train'?" in load_error(tmp_path, "trian: {steps: 3}\n")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("task: {length: 1}\n", "task.length: must be ≥ 2, got 1"),
        ("model: {hidden: 0}\n", "model.hidden: must be ≥ 1"),
        ("train: {lr: 0}\n", "train.lr: must be > 0"),
        ("train: {lr: -1.0e-3}\n", "train.lr: must be > 0"),
        ("train: {momentum: 1.0}\n", "train.momentum: must be < 1"),
        ("model: {hidden: 12.5}\n", "model.hidden: expected int, got float"),
        ("model: {hidden: true}\n", "model.hidden: expected int, got bool"),
        ("model: {hidden: '64'}\n", "model.hidden: expected int, got str"),
        ("train: {lr: fast}\n", "train.lr: expected float, got str"),
        ("train: {lr: .nan}\n", "train.lr: must be a finite number"),
        ("model: {cell: grux}\n",
         "model.cell: 'grux' is not allowed; allowed: rnn, lstm, gru, indrnn, exprnn, lru"),
        ("task: {name: parity}\n", "allowed: adding, copy"),
        ("model: {recurrent_init: zeros}\n", "allowed: orthogonal, normal, uniform, identity"),
        ("train: {dtype: float16}\n", "allowed: float32, float64"),
        ("model: [1, 2]\n", "model: expected a mapping, got list"),
        ("seeds: 0\n", "seeds: must be a count from 1 to 10000"),
        ("seeds: [1, 1]\n", "seeds: seeds must be distinct"),
        ("seeds: []\n", "seeds: expected a count ≥ 1 or a non-empty list"),
        ("seeds: [-1]\n", "seeds[0]: must be ≥ 0"),
        ("name: a/b\n", "name: expected a folder name"),
        ("sweep: {model.cell: []}\n", "sweep.model.cell: expected a non-empty list"),
        ("sweep: {model.cell: [rnn, grux]}\n", "sweep.model.cell[1]: 'grux' is not allowed"),
        ("sweep: {model.hiden: [1]}\n", "model.hiden: unknown key; did you mean 'hidden'?"),
        ("sweep: {seeds: [1]}\n", "seeds: not a config key"),
        ("sweep: [model.cell]\n", "sweep: expected a mapping"),
        ("train: {steps: 150}\nlog: {every: 100}\n",
         "train.steps (150) must be a multiple of log.every (100)"),
        ("train: {steps: 100, chunk: 30}\nlog: {every: 50}\n", "train.chunk (30) must divide log.every (50)"),
        ("- 1\n- 2\n", "expected a mapping with keys name, task"),
        ("just a string\n", "expected a mapping"),
        ("task: {length: [1\n", "invalid YAML at line"),
    ],
)
def test_bad_values_give_one_line_naming_file_and_key(tmp_path, text, expected):
    assert expected in load_error(tmp_path, text)


def test_yaml_float_without_dot_is_accepted(tmp_path):
    # PyYAML (YAML 1.1) reads `1e-3` as a string; a user means the number.
    assert config.load(write(tmp_path, "train: {lr: 1e-3}\n")).train.lr == 1e-3


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        config.load(tmp_path / "absent.yaml")


def test_binary_junk_is_a_user_error(tmp_path):
    path = tmp_path / "junk.yaml"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(UserError, match=str(path)):
        config.load(path)


def test_set_overrides_nested_keys_and_parses_values(tmp_path):
    path = write(tmp_path, "model: {hidden: 8}\n")
    c = config.load(path, ["model.hidden=16", "train.lr=0.01", "task.name=copy", "log.every=50"],
                    seeds=3, steps=200)
    assert (c.model.hidden, c.train.lr, c.task.name, c.log.every) == (16, 0.01, "copy", 50)
    assert (c.seeds, c.train.steps) == ((0, 1, 2), 200)


@pytest.mark.parametrize(
    "override, expected",
    [("model.hidden", "expected key.path=value"), ("modle.hidden=3", "did you mean 'model'?"),
     ("model.hidden=-3", "model.hidden: must be ≥ 1"), ("name.x=1", "name is not a mapping")],
)
def test_bad_overrides_are_user_errors(tmp_path, override, expected):
    assert expected in load_error(tmp_path, "name: x\n", override)


def test_sweep_expands_grid_in_file_order_times_seeds(tmp_path):
    text = "seeds: [3, 5]\nsweep: {model.cell: [rnn, lstm], task.length: [10, 20]}\n"
    runs = config.expand(config.load(write(tmp_path, text)))
    assert [r.name for r in runs] == [
        f"cell={cell},length={length},seed={seed}"
        for cell in ("rnn", "lstm") for length in (10, 20) for seed in (3, 5)
    ]
    last = runs[-1]
    assert (last.config.model.cell, last.config.task.length, last.config.seeds) == ("lstm", 20, (5,))
    assert last.config.sweep == () and last.point == {"model.cell": "lstm", "task.length": 20}


def test_sweep_names_use_full_keys_when_leaves_collide(tmp_path):
    # no two sections share a leaf name today except via synthetic configs: check the rule itself
    assert config.run_name({"a.x": 1, "b.x": 2}, 0) == "a.x=1,b.x=2,seed=0"


def test_resolved_config_round_trips(tmp_path):
    c = config.load(ROOT / "configs" / "adding.yaml")
    assert config.from_mapping(c.to_dict(), "again") == c
    run = config.expand(c)[0]
    assert config.from_mapping(yaml.safe_load(yaml.safe_dump(run.config.to_dict())), "x") == run.config


junk = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (st.lists(children, max_size=3)
                      | st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=10,
)
keys = st.sampled_from(["task", "model", "train", "log", "seeds", "sweep", "name", "bogus"])
fields = st.sampled_from(["name", "length", "cell", "hidden", "lr", "steps", "every", "chunk", "x"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(keys, junk | st.dictionaries(fields, junk, max_size=4), max_size=5))
def test_any_mapping_either_loads_or_raises_a_one_line_user_error(raw):
    try:
        c = config.from_mapping(raw, "gen.yaml")
    except UserError as error:
        assert str(error).startswith("gen.yaml") and "\n" not in str(error)
    else:
        assert isinstance(c, config.Config)


@pytest.mark.parametrize(
    "text, expected",
    [("model: {forget_gate: 0}\n", "model.forget_gate: expected bool, got int"),
     ("model: {chrono: 2}\n", "model.chrono: must be ≥ 3")],
)
def test_lstm_options_are_validated(tmp_path, text, expected):
    assert expected in load_error(tmp_path, text)


def test_lstm_options_load(tmp_path):
    c = config.load(write(tmp_path, "model: {forget_gate: false, chrono: 200}\n"))
    assert (c.model.forget_gate, c.model.chrono) == (False, 200)


@pytest.mark.parametrize(
    "text, expected",
    [("task: {length: 20, variant: hochreiter1997}\n",
      "task.length: adding (hochreiter1997): length must be ≥ 22"),
     ("task: {name: copy, variant: hochreiter1997}\n", "task.variant: task 'copy' has no variant"),
     ("task: {variant: hs}\n", "allowed: standard, hochreiter1997")],
)
def test_task_variants_are_validated(tmp_path, text, expected):
    assert expected in load_error(tmp_path, text)


# ---- malformed config files through the real CLI ------------------------------------------------

sizes = st.sampled_from([-1, 0, 1, 3, 10**9, 2**63]) | st.integers(-5, 5) | st.floats(allow_nan=True)
section_values = st.fixed_dictionaries({}, optional={
    "task": st.fixed_dictionaries({}, optional={"name": st.sampled_from(["adding", "copy", "x"]) | junk,
                                                "length": sizes, "variant": junk}),
    "model": st.fixed_dictionaries({}, optional={"cell": st.sampled_from(["rnn", "lstm", "gru"]),
                                                 "hidden": sizes, "hiden": sizes, "scale": sizes}),
    "train": st.fixed_dictionaries({}, optional={"steps": sizes, "batch": sizes, "lr": sizes,
                                                 "chunk": sizes, "remat": sizes}),
    "log": st.fixed_dictionaries({}, optional={"every": sizes, "eval_batch": sizes}),
    "seeds": sizes | st.lists(sizes, max_size=3),
    "sweep": st.dictionaries(st.sampled_from(["model.cell", "task.length", "bogus", "train"]),
                             st.lists(sizes, max_size=2) | junk, max_size=2),
})
config_files = (
    st.binary(max_size=64)  # binary junk
    | junk.map(lambda raw: yaml.safe_dump(raw).encode())  # any YAML value, mappings or not
    | section_values.map(lambda raw: yaml.safe_dump(raw).encode())  # wrong types, bad sizes
    | st.fixed_dictionaries({  # valid, but perhaps far too big for memory
        "task": st.fixed_dictionaries({"length": st.integers(2, 10**6)}),
        "model": st.fixed_dictionaries({"hidden": st.integers(1, 10**6)}),
    }).map(lambda raw: yaml.safe_dump(raw).encode())
)


@settings(max_examples=120, deadline=None)
@given(config_files)
def test_any_config_file_is_planned_or_refused_in_one_line_through_the_cli(tmp_path_factory, data):
    """`lstm-vg run --dry-run` on a generated file: it either plans the runs (exit 0) or exits 2
    with one line naming the file, never a traceback; sizes too big for memory are refused."""
    from typer.testing import CliRunner

    from lstm_vg.cli import app

    path = tmp_path_factory.mktemp("gen") / "gen.yaml"
    path.write_bytes(data)
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert result.exit_code in (0, 2), result.output
    event("planned" if result.exit_code == 0 else "GiB" if "GiB" in result.output else "refused")
    error = result.exception
    assert not isinstance(error, Exception) or isinstance(error, SystemExit), error
    if result.exit_code == 2:
        line = " ".join(result.output.split())
        assert line.startswith(f"error: {path}"), result.output
        assert "Traceback" not in result.output
