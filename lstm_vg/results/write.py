"""Writing a results folder: every file is written whole to a temporary file and renamed into
place (atomic on POSIX), so an interrupt never leaves half a file and readers need no lock."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import yaml

from lstm_vg.errors import UserError
from lstm_vg.results import format as fmt
from lstm_vg.results.format import flatten


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename over it (atomic on POSIX). The file
    gets the permissions a plain `open` would give (0666 less the umask), not mkstemp's 0600."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, 0o666 & ~umask())
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C included: leave no temporary file behind
        with contextlib.suppress(FileNotFoundError):  # already renamed when the signal came
            os.unlink(tmp)
        raise


def umask() -> int:
    """The process's umask (reading it means setting it: put it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def json_value(value):
    """JSON has no NaN/inf: they are stored as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, obj: dict) -> None:
    clean = {key: json_value(value) for key, value in obj.items()}
    atomic_write(path, (json.dumps(clean, indent=2) + "\n").encode())


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path, buffer.getvalue())


def write_config(folder: Path, config: dict) -> None:
    """config.yaml: the run's resolved config as a plain mapping (`Config.to_dict`)."""
    atomic_write(folder / fmt.CONFIG, yaml.safe_dump(config, sort_keys=False).encode())


def write_logs(folder: Path, rows: list[dict], profiles: dict[str, list[np.ndarray]]) -> None:
    """metrics.csv (rows of METRIC_FIELDS, floats in full precision), gradients.npz (the logged
    steps and each state's profiles stacked to (logs, T')) and, when there are any, dynamics.npz
    (the logged steps, each diagnostic stacked to (logs, …), the constant ones once)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fmt.METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: repr(row[key]) if isinstance(row[key], float) else row[key]
                      for key in fmt.METRIC_FIELDS} for row in rows)
    atomic_write(folder / fmt.METRICS, text.getvalue().encode())
    steps = {"steps": np.asarray([r["step"] for r in rows], np.int64)}
    gradients = {name: np.stack(p) for name, p in profiles.items() if fmt.in_gradients(name)}
    write_npz(folder / fmt.NORMS, steps | gradients)
    dynamics = {name: p[-1] if name in fmt.DYNAMICS_CONSTANTS else np.stack(p)
                for name, p in profiles.items() if not fmt.in_gradients(name)}
    if dynamics:
        write_npz(folder / fmt.DYNAMICS, steps | dynamics)


def write_params(folder: Path, params: dict) -> None:
    """params.npz: the param pytree flattened to "cell/w_x", "cell/layers/0/nu_log", … (host
    arrays; a list of layers numbered, so the file loads without pickle)."""
    write_npz(folder / fmt.PARAMS, {k: np.asarray(v) for k, v in flatten(params, lists=True).items()})


@contextlib.contextmanager
def lock(out: Path, name: str):
    """Hold <out>/.<name>.lock while writing <out>/<name>/: a second lstm-vg process pointed at
    the same folder gets a UserError instead of mixing its files in. An flock, so the kernel
    releases it when the process ends, however it ends: no stale locks."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        file = open(out / f".{name}.lock", "a+")
    except OSError as error:
        raise UserError(f"{out / name}: cannot create the results folder: {error.strerror}") from None
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "?"
            raise UserError(f"{out / name}: another lstm-vg process (pid {holder}) is writing these "
                            f"results; wait for it to end or pass --out DIR") from None
        file.truncate(0)
        file.write(f"{os.getpid()}\n")
        file.flush()
        yield


def make_folder(folder: Path) -> Path:
    """`folder` and its parents, or a one-line UserError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{folder}: cannot create the results folder: {error.strerror}") from None
    return folder


def prepare_experiment(out: Path, name: str, overwrite: bool, reuse: bool = False) -> Path:
    """<out>/<name>, created; an existing non-empty folder is replaced only with `overwrite`,
    or kept as it is with `reuse` (its finished runs are reused, see `read.is_finished`)."""
    folder = out / name
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: exists and is not a folder")
    if folder.exists() and any(folder.iterdir()) and not reuse:
        if not overwrite:
            raise UserError(
                f"{folder}: already holds results; pass --resume to continue its unfinished runs, "
                f"--overwrite to replace them or --out DIR to write elsewhere"
            )
        shutil.rmtree(folder)
    return make_folder(folder)


def start_run_folder(folder: Path, config: dict, resume: bool) -> None:
    """A run's folder with its config.yaml: kept as it is when the run resumes, else emptied
    first (an unfinished or outdated run of the same name is being redone)."""
    if folder.exists() and not resume:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=resume)
    write_config(folder, config)
