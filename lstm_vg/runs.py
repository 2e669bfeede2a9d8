"""Results folders: one per run, written atomically so an interrupt never leaves half a file.

Layout (the public contract is docs/results-format.md)::

    <out>/<experiment>/<run>/
        config.yaml     resolved config of this run (loadable by `lstm-vg run`)
        meta.json       versions, device, seed, batch, start/end time
        metrics.csv     one row per logged step
        gradients.npz   steps (logs,), h_norms (logs, T'), c_norms (logs, T') for the LSTM
        params.npz      final params, flattened keys "cell/w_x", "readout/b", ...
        summary.json    status and the headline numbers (see `summarize`)
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import os
import platform
import shutil
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml

from lstm_vg import __version__, gradients
from lstm_vg.config import Run, from_mapping
from lstm_vg.errors import UserError

METRIC_FIELDS = ("step", "train_loss", "eval_loss", "eval_accuracy", "grad_norm", "wall_seconds")
STATUSES = ("running", "done", "diverged", "interrupted")


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename over it (atomic on POSIX)."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C included: leave no temporary file behind
        with contextlib.suppress(FileNotFoundError):  # already renamed when the signal came
            os.unlink(tmp)
        raise


def finite_or_none(value):
    """JSON has no NaN/inf: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, obj: dict) -> None:
    clean = {key: finite_or_none(value) for key, value in obj.items()}
    atomic_write(path, (json.dumps(clean, indent=2) + "\n").encode())


def write_csv(path: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: repr(row[key]) if isinstance(row[key], float) else row[key]
                      for key in METRIC_FIELDS} for row in rows)
    atomic_write(path, text.getvalue().encode())


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path, buffer.getvalue())


def flatten(tree: dict, sep: str = "/", prefix: str = "") -> dict:
    """{"cell": {"w_x": a}} → {"cell/w_x": a} (or "cell.w_x" with sep=".")."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        flat |= flatten(value, sep, f"{name}{sep}") if isinstance(value, dict) else {name: value}
    return flat


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


def prepare_experiment(out: Path, name: str, overwrite: bool, reuse: bool = False) -> Path:
    """<out>/<name>, created; an existing non-empty folder is replaced only with `overwrite`,
    or kept as it is with `reuse` (its finished runs are reused, see `is_finished`)."""
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
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{folder}: cannot create the results folder: {error.strerror}") from None
    return folder


def holds_run(folder: Path, run: Run) -> bool:
    """Whether `folder`'s config.yaml is this run's config (read through the schema, so a key
    added to lstm-vg since, at its default, still counts as the same)."""
    try:
        saved = from_mapping(yaml.safe_load((folder / "config.yaml").read_text()), str(folder))
    except (OSError, ValueError, yaml.YAMLError, UserError):
        return False
    return saved == run.config


def is_finished(folder: Path, run: Run) -> bool:
    """Whether `folder` holds this run, trained to the end with the same config."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(summary, dict) and summary.get("status") in ("done", "diverged")
            and holds_run(folder, run))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def meta(run: Run, runs_in_batch: int, device_kind: str, started: str, devices: int = 1,
         batch_shards: int = 1, finished=None) -> dict:
    import jax
    import jaxlib
    import optax

    return {
        "lstm_vg": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "python": platform.python_version(),
        "device_kind": device_kind,
        "platform": jax.default_backend(),
        "seed": run.seed,
        "runs_in_batch": runs_in_batch,
        "devices": devices,
        "batch_shards": batch_shards,
        "started": started,
        "finished": finished,
    }


def summarize(task, run: Run, rows: list[dict], norms: dict[str, list], status: str,
              diverged_at_step, wall_seconds: float) -> dict:
    """summary.json: the run's status and headline numbers (the rules are in the results doc)."""
    last = rows[-1]
    solved_steps = [r["step"] for r in rows if task.solved(r["eval_loss"], r["eval_accuracy"])]
    h_norms = norms["h_norms"]
    steps = last["step"]
    return {
        "status": status,
        "experiment": run.config.name,
        "run": run.name,
        "cell": run.config.model.cell,
        "task": task.name,
        "length": task.length,
        "seed": run.seed,
        **{f"sweep.{key}": value for key, value in run.point.items()},
        "steps": steps,
        "baseline_loss": task.baseline_loss,
        "final_train_loss": last["train_loss"],
        "final_eval_loss": last["eval_loss"],
        "final_eval_accuracy": last["eval_accuracy"],
        "best_eval_loss": min((r["eval_loss"] for r in rows), key=lambda v: (math.isnan(v), v)),
        "solved": bool(solved_steps),
        "steps_to_solve": solved_steps[0] if solved_steps else None,
        "grad_ratio_init": gradients.grad_ratio(h_norms[0]),
        "grad_ratio_final": gradients.grad_ratio(h_norms[-1]),
        "decay_rate_init": gradients.decay_rate(h_norms[0]),
        "decay_rate_final": gradients.decay_rate(h_norms[-1]),
        "steps_in_past_init": gradients.steps_in_past(h_norms[0]),
        "steps_in_past_final": gradients.steps_in_past(h_norms[-1]),
        "diverged_at_step": diverged_at_step,
        "steps_per_second": steps / wall_seconds if wall_seconds > 0 else None,
        "wall_seconds": wall_seconds,
    }


class RunFolder:
    """Writes one run's files; every write replaces a whole file atomically."""

    def __init__(self, folder: Path, run: Run, resume: bool = False):
        self.folder, self.run = folder, run
        if folder.exists() and not resume:  # an unfinished or outdated run being redone
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=resume)
        config_text = yaml.safe_dump(run.config.to_dict(), sort_keys=False)
        atomic_write(folder / "config.yaml", config_text.encode())

    def write_meta(self, meta: dict) -> None:
        write_json(self.folder / "meta.json", meta)

    def write_logs(self, rows: list[dict], norms: dict[str, list]) -> None:
        write_csv(self.folder / "metrics.csv", rows)
        arrays = {"steps": np.asarray([r["step"] for r in rows], np.int64)}
        write_npz(self.folder / "gradients.npz", arrays | {k: np.stack(v) for k, v in norms.items()})

    def write_params(self, params: dict) -> None:
        write_npz(self.folder / "params.npz", {k: np.asarray(v) for k, v in flatten(params).items()})

    def write_summary(self, summary: dict) -> None:
        write_json(self.folder / "summary.json", summary)

    def read_logs(self, up_to_step: int) -> tuple[list[dict], dict[str, list[np.ndarray]]]:
        """The rows and gradient profiles logged so far, up to `up_to_step` (a resumed run's
        checkpoint may be older than its last log)."""
        try:
            with open(self.folder / "metrics.csv", newline="") as file:
                rows = [{key: int(value) if key == "step" else float(value) for key, value in row.items()}
                        for row in csv.DictReader(file)]
            rows = [row for row in rows if row["step"] <= up_to_step]
            with np.load(self.folder / "gradients.npz") as saved:
                norms = {k: list(saved[k][: len(rows)]) for k in saved.files if k != "steps"}
        except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as error:
            raise UserError(f"{self.folder}: cannot resume, unreadable logs ({error}); "
                            f"rerun with --overwrite") from None
        return rows, norms
