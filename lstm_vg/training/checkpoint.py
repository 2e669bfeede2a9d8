"""Per-run checkpoints, written after every chunk, and what `--resume` decides from a folder:
which runs are finished (kept), which continue from their checkpoint, which start again.

``<run>/checkpoint.npz`` holds the run's `TrainState` leaves (``state/0`` …, in tree order, the
PRNG key as its raw key data) and the training metrics of the chunks since the last logged step
(``window/loss``, ``window/grad_norm``: (chunks, K)), which the next logged row averages, and
``step``, the number of steps taken.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import jax
import numpy as np
import yaml

from lstm_vg import config
from lstm_vg.config import Run
from lstm_vg.errors import UserError
from lstm_vg.results import format as fmt
from lstm_vg.results import read
from lstm_vg.results.write import write_npz
from lstm_vg.training import plan

FILE = fmt.CHECKPOINT
WINDOW = ("loss", "grad_norm")


def to_arrays(state) -> dict[str, np.ndarray]:
    state = state._replace(key=jax.random.key_data(state.key))
    return {f"state/{i}": np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(state))}


def save(folder: Path, state, window: list[dict]) -> None:
    """One run's host-side state and its window of chunk metrics {"loss": (K,), …}."""
    arrays = to_arrays(state) | {"step": np.asarray(state.step)}
    for name in WINDOW:
        arrays[f"window/{name}"] = (np.stack([np.asarray(w[name]) for w in window]) if window
                                    else np.zeros((0, 0), np.float32))
    write_npz(folder / FILE, arrays)


def restore(folder: Path, like) -> tuple[object, list[dict]]:
    """(state, window) saved by `save`; `like` is a fresh state of the same run (the layout)."""
    path = folder / FILE
    template = to_arrays(like)
    leaves, treedef = jax.tree.flatten(like._replace(key=jax.random.key_data(like.key)))
    try:
        with np.load(path) as saved:
            arrays = {name: saved[name] for name in saved.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise UserError(f"{path}: unreadable checkpoint ({error}); rerun without --resume") from None
    for name, expected in template.items():
        got = arrays.get(name)
        if got is None or got.shape != expected.shape or got.dtype != expected.dtype:
            raise UserError(f"{path}: {name} does not match the run's config; rerun without --resume")
    state = jax.tree.unflatten(treedef, [arrays[f"state/{i}"] for i in range(len(leaves))])
    state = state._replace(key=jax.random.wrap_key_data(state.key))
    columns = (arrays[f"window/{name}"] for name in WINDOW)
    window = [dict(zip(WINDOW, values, strict=True)) for values in zip(*columns, strict=True)]
    return state, window


def saved_step(folder: Path) -> int | None:
    """The step of a run's checkpoint, or None without a readable one."""
    try:
        with np.load(folder / FILE) as saved:
            return int(saved["step"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None


def holds_run(folder: Path, run: Run) -> bool:
    """Whether `folder`'s config.yaml is this run's config (read through the schema, so a key
    added to lstm-vg since, at its default, still counts as the same), and its meta.json names
    the same cell code and data set (`plan.sources`: a researcher's cell file edited since, or
    other images in task.data, make it another run)."""
    try:
        # relative paths in it (task.data) mean what they mean in the run's own config
        saved = config.from_mapping(read.read_config(folder / fmt.CONFIG), str(folder),
                                    folder=run.config.folder)
        if saved != run.config:
            return False
        meta = read.read_json(folder / fmt.META) or {}
        recorded = {key: value.get("sha256") if isinstance(value := meta.get(key), dict) else None
                    for key in ("cell_source", "task_data")}
        return recorded == plan.sources(run.config)
    except (OSError, ValueError, yaml.YAMLError, UserError):
        return False


def is_finished(folder: Path, run: Run) -> bool:
    """Whether `folder` holds this run, trained to the end with the same config."""
    try:
        summary = read.read_summary(folder / fmt.SUMMARY)
    except UserError:
        return False
    return summary is not None and summary["status"] in fmt.ENDED and holds_run(folder, run)


def resumable(folder: Path, run: Run) -> int | None:
    """The step an unfinished run can resume from: its checkpoint's, when its folder holds
    this run's config and logs; else None (it starts again)."""
    logs = all((folder / name).is_file() for name in (fmt.METRICS, fmt.NORMS))
    return saved_step(folder) if logs and holds_run(folder, run) else None
