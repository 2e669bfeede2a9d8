"""Per-run checkpoints: what it takes to continue a run bit for bit, written after every chunk.

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

from lstm_vg import runs
from lstm_vg.errors import UserError

FILE = "checkpoint.npz"
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
    runs.write_npz(folder / FILE, arrays)


def load(folder: Path, like) -> tuple[object, list[dict]]:
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
    window = [dict(zip(WINDOW, values)) for values in zip(*(arrays[f"window/{n}"] for n in WINDOW))]
    return state, window


def saved_step(folder: Path) -> int | None:
    """The step of a run's checkpoint, or None without a readable one."""
    try:
        with np.load(folder / FILE) as saved:
            return int(saved["step"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
