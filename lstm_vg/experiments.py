"""Experiments: the configs that reproduce a published comparison, and the claims that check it.

```yaml
name: ci                                  # results go to <out>/ci/<config name>/<run>/
description: RNN vs LSTM on the adding problem, sized for CI
configs:                                  # each a config (same keys as configs/*.yaml) …
  - base: ../configs/adding.yaml          # … optionally on top of a config file (path relative
    name: adding_T100                     #     to this file), deep-merged (a `sweep` given here
                                          #     replaces the base's)
    seeds: 3
claims:                                   # one line each; see lstm_vg/claims.py
  - fraction(solved | cell=lstm) >= 1
```

`lstm_vg.reproduce` copies the experiment file to <out>/<name>/experiment.yaml, trains what is
not yet trained there (runs finished with the same config are reused, interrupted ones continue
from their checkpoints) and checks every claim on the finished runs (`check`);
`lstm-vg report <out>/<name> --check` checks them again later. Nothing here imports JAX.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lstm_vg import config
from lstm_vg.analysis import claims, grouping
from lstm_vg.config import Config
from lstm_vg.errors import UserError
from lstm_vg.results import format as fmt
from lstm_vg.results.write import atomic_write, make_folder
from lstm_vg.validate import folder_name, read_yaml, suggestion

TOP_LEVEL = ("name", "description", "configs", "claims")
CLAIMS_FILE = "experiment.yaml"


@dataclass(frozen=True)
class Experiment:
    """An experiment file: the configs to train and the claims to check on their results."""

    name: str
    source: Path
    configs: tuple[Config, ...]
    claims: tuple[claims.Claim, ...]


def deep_merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`, mappings merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        both_maps = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = deep_merge(merged[key], value) if both_maps else value
    return merged


def load_config_entry(entry, path: Path, index: int) -> Config:
    where = f"{path}: configs[{index}]"
    if not isinstance(entry, dict):
        raise UserError(f"{where}: expected a config mapping, got {type(entry).__name__}")
    entry = dict(entry)
    base = entry.pop("base", None)
    default_name = f"config{index}"
    if base is not None:
        base_path = path.parent / str(base)
        raw = read_yaml(base_path)
        if not isinstance(raw, dict):
            raise UserError(f"{base_path}: expected a config mapping")
        # sections merge key by key, but a sweep given here replaces the base's sweep whole
        entry = deep_merge({k: v for k, v in raw.items() if not (k == "sweep" and k in entry)}, entry)
        default_name = entry.get("name", base_path.stem)
    return config.from_mapping(entry, where, default_name=default_name, folder=str(path.parent))


def parse_claims(raw, path: Path) -> tuple[claims.Claim, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise UserError(f"{path}: claims: expected a list of one-line claims")
    return tuple(claims.parse(text, f"{path}: claims[{i}]") for i, text in enumerate(raw))


def read_mapping(path: Path) -> dict:
    """An experiment file's top-level mapping, its keys checked."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping with keys {', '.join(TOP_LEVEL)}")
    for key in raw:
        if key not in TOP_LEVEL:
            raise UserError(f"{path}: {key}: unknown key; {suggestion(str(key), TOP_LEVEL)}")
    return raw


def load(path: str | Path) -> Experiment:
    """Read and validate an experiment file: its configs and its claims."""
    path = Path(path)
    raw = read_mapping(path)
    name = folder_name(raw.get("name", path.stem), str(path))
    entries = raw.get("configs")
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{path}: configs: expected a non-empty list of configs")
    configs = tuple(load_config_entry(entry, path, i) for i, entry in enumerate(entries))
    names = [c.name for c in configs]
    for i, c in enumerate(configs):
        if names.count(c.name) > 1:
            raise UserError(f"{path}: configs[{i}]: name {c.name!r} is used twice; give each a name")
    return Experiment(name, path, configs, parse_claims(raw.get("claims"), path))


def check(folder: Path, claims_to_check) -> tuple[list[claims.Verdict], list[str]]:
    """Every claim checked on the finished (done or diverged) runs below `folder`; warnings
    about unreadable runs."""
    experiments, warnings = grouping.load_results(Path(folder))
    ended = [r for e in experiments for r in e.runs if r.status in fmt.ENDED]
    return [claims.check(claim, ended) for claim in claims_to_check], warnings


def saved_claims(folder: Path) -> tuple[claims.Claim, ...]:
    """The claims of the experiment file `reproduce` saved in `folder`."""
    path = Path(folder) / CLAIMS_FILE
    if not path.exists():
        raise UserError(f"{path}: no such file; --check needs the folder `lstm-vg reproduce` wrote")
    return parse_claims(read_mapping(path).get("claims"), path)


def prepare(experiment: Experiment, out: Path) -> Path:
    """<out>/<name>/ with a copy of the experiment file, whose claims `report --check` reads."""
    folder = make_folder(Path(out) / experiment.name)
    atomic_write(folder / CLAIMS_FILE, experiment.source.read_bytes())
    return folder
