"""A run's log while it trains: the logged rows and gradient profiles, rewritten whole to its
folder at every log, and its meta.json and summary.json.

Logged-row rules (documented in docs/results-format.md): at step 0 and every `log.every` steps,
eval loss/accuracy and the per-timestep gradient norms are measured on the run's fixed eval and
probe batches with the current params. `train_loss` and `grad_norm` are the means over the
training batches since the previous logged step (at step 0, where no training has happened yet,
they are measured on the probe batch).
"""

from __future__ import annotations

import math
import platform
from pathlib import Path

import jax
import jaxlib
import numpy as np
import optax

from lstm_vg import __version__
from lstm_vg.config import Run
from lstm_vg.errors import UserError
from lstm_vg.results import format as fmt
from lstm_vg.results import read, summary, write


def meta(run: Run, task, runs_in_batch: int, devices: int, batch_shards: int, cell=None) -> dict:
    """meta.json at the start of a run: versions, device, batch, what its task records
    (baseline and solved criterion, so a run still being written can be drawn against them),
    and for a researcher's cell where its code came from (file or module, sha256)."""
    source = getattr(cell, "source", None)
    return {
        "lstm_vg": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "python": platform.python_version(),
        "device_kind": jax.devices()[0].device_kind,
        "platform": jax.default_backend(),
        "host_cpu": host_cpu(),
        "seed": run.seed,
        "runs_in_batch": runs_in_batch,
        "devices": devices,
        "batch_shards": batch_shards,
        **fmt.task_fields(task),
        **({"task_data": task.record} if hasattr(task, "record") else {}),  # pixels: source, sha256
        **({"cell_source": source} if source else {}),
        "grad_profile": f"{getattr(cell, 'recurrent_state', 'h')}_norms",
        "started": fmt.now(),
        "finished": None,
    }


def host_cpu() -> str:
    """The host's CPU: its model and widest vector extension, e.g. "Intel(R) Xeon(R) Processor
    (avx512f)" (/proc/cpuinfo on Linux; elsewhere what `platform` knows). XLA compiles for the
    CPU it runs on, so runs on two CPUs can differ in the last bits: a reproduction that differs
    from its calibration can say why."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key in ("model name", "Model", "Hardware") and not model:
                    model = value
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown"
    widest = next((isa for isa in ("avx512f", "avx2", "avx", "sse4_2", "sve", "asimd") if isa in flags), None)
    return f"{model} ({widest})" if widest else model


def read_logs(folder: Path, up_to_step: int) -> tuple[list[dict], dict[str, list[np.ndarray]]]:
    """The rows and profiles (gradients.npz and dynamics.npz) a resumed run had logged, up to
    `up_to_step` (its checkpoint may be older than its last log)."""
    try:
        metrics, norms = read.read_metrics(folder / fmt.METRICS), read.read_norms(folder / fmt.NORMS)
        dynamics = read.read_dynamics(folder / fmt.DYNAMICS) or {}
    except UserError as error:
        raise UserError(f"cannot resume: {error}; rerun with --overwrite") from None
    if metrics is None or norms is None:
        raise UserError(f"{folder}: cannot resume: metrics.csv or gradients.npz is missing; "
                        f"rerun with --overwrite")
    rows = [{key: int(metrics[key][i]) if key == "step" else float(metrics[key][i])
             for key in fmt.METRIC_FIELDS} for i in range(metrics["step"].size)]
    rows = [row for row in rows if row["step"] <= up_to_step]
    profiles = {name: list(a[: len(rows)]) for name, a in (norms | dynamics).items()
                if name != "steps" and name not in fmt.DYNAMICS_CONSTANTS}
    return rows, profiles | {name: [dynamics[name]] for name in fmt.DYNAMICS_CONSTANTS if name in dynamics}


class RunLog:
    """One run's logged rows and gradient profiles, rewritten to its folder at every log."""

    def __init__(self, run: Run, folder: Path, meta: dict, resume_at: int | None = None):
        """A new run's log in `folder`, or with `resume_at` the log of a run resumed at that step."""
        self.run, self.folder, self.meta = run, folder, meta
        write.start_run_folder(folder, run.config.to_dict(), resume=resume_at is not None)
        write.write_json(folder / fmt.META, meta)
        self.rows: list[dict] = []
        self.norms: dict[str, list[np.ndarray]] = {}
        if resume_at is not None:
            self.rows, self.norms = read_logs(folder, resume_at)
        self.diverged_at: int | None = None

    @property
    def last_step(self) -> int | None:
        return self.rows[-1]["step"] if self.rows else None

    def append(self, row: dict, profiles: dict[str, np.ndarray], diverged_at: int = -1) -> None:
        """Log a row; `diverged_at` ≥ 0: the step at which training froze the run (see
        `train.Trainer.step`). A non-finite eval loss marks the run too."""
        if self.diverged_at is None and diverged_at >= 0:
            self.diverged_at = diverged_at
        if self.diverged_at is None and not np.isfinite(row["eval_loss"]):
            self.diverged_at = row["step"]
        self.rows.append(row)
        for name, profile in profiles.items():
            if name in fmt.DYNAMICS_CONSTANTS:  # the same at every log: kept once
                self.norms[name] = [profile]
            else:
                self.norms.setdefault(name, []).append(profile)
        write.write_logs(self.folder, self.rows, self.norms)

    def finish(self, task, status: str, params: dict | None, wall_seconds: float) -> dict | None:
        """Write the run's last files (a finished run needs no checkpoint); its summary. A run
        interrupted before its first log (in the first compile, say) has nothing to summarise:
        its folder keeps config.yaml and meta.json, and a resume starts it again; None."""
        if not self.rows:
            write.write_json(self.folder / fmt.META, self.meta | {"finished": fmt.now()})
            return None
        status = "diverged" if self.diverged_at is not None else status
        write.write_logs(self.folder, self.rows, self.norms)  # again: an interrupt may have cut the last
        if params is not None:
            write.write_params(self.folder, params)
        if status != "interrupted":
            (self.folder / fmt.CHECKPOINT).unlink(missing_ok=True)
        c = self.run.config
        identity = {"experiment": c.name, "run": self.run.name, "cell": c.model.cell,
                    "seed": self.run.seed, **{f"sweep.{k}": v for k, v in self.run.point.items()}}
        result = summary.summarize(task, identity, self.rows, self.norms, status, self.diverged_at,
                                   wall_seconds, self.meta.get("grad_profile", "h_norms"))
        write.write_json(self.folder / fmt.SUMMARY, result)
        write.write_json(self.folder / fmt.META, self.meta | {"finished": fmt.now()})
        return result


def window_mean(window: list[dict], name: str) -> np.ndarray:
    """Per run, the mean of a chunk metric over the window (chunks × K steps). math.fsum rounds
    once, so the number does not depend on how many runs share the batch (numpy's pairwise
    summation over a (chunks, runs, K) array groups the terms by its shape)."""
    values = np.stack([w[name] for w in window], axis=1).reshape(len(window[0][name]), -1)
    return np.array([math.fsum(v.tolist()) / v.size if np.isfinite(v).all() else np.mean(v)
                     for v in values])


def recurrent_spectrum(matrix: np.ndarray) -> dict[str, float]:
    """σ_max(W_h) (largest singular value: Pascanu et al.'s λ₁) and ρ(W_h) (spectral radius), in
    float64 NumPy on the host (so on any backend); NaN for a matrix that is not finite."""
    matrix = np.asarray(matrix, np.complex128 if np.iscomplexobj(matrix) else np.float64)
    if not np.isfinite(matrix).all():
        return {"sigma_max": np.nan, "spectral_radius": np.nan}
    return {"sigma_max": float(np.linalg.norm(matrix, 2)),
            "spectral_radius": float(np.max(np.abs(np.linalg.eigvals(matrix))))}


def dynamics_profiles(logged: dict, r: int) -> dict[str, np.ndarray]:
    """Run r's arrays of dynamics.npz at this log, from a batched `evaluate` result: its entries
    as they are, but the recurrent matrix as its σ_max and ρ, and the keep gate with its
    timescales τ = 1/(1 − f̄) (docs/results-format.md)."""
    out = {}
    for name in ("lyapunov", "connectivity", "connectivity_examples", "connectivity_inputs", "keep_gate"):
        if name in logged:
            out[name] = np.asarray(logged[name][r])
    if "recurrent_matrix" in logged:
        spectrum = recurrent_spectrum(logged["recurrent_matrix"][r])
        out |= {name: np.asarray(value) for name, value in spectrum.items()}
    if "keep_gate" in out:
        with np.errstate(divide="ignore"):
            out["timescale"] = 1 / (1 - out["keep_gate"].astype(np.float64))
    return out


def logged_rows(step: int, logged: dict, window: list[dict], wall_seconds: float, carry_names):
    """Per run (row, {"h_norms": (T',), "h_reach": (T',), …, and `dynamics_profiles`}) from a
    batched `evaluate` result and the chunk metrics since the previous log (their means; the
    probe batch's at step 0)."""
    if window:
        train_loss, grad_norm = window_mean(window, "loss"), window_mean(window, "grad_norm")
    else:
        train_loss, grad_norm = logged["probe_loss"], logged["probe_grad_norm"]
    for r in range(len(train_loss)):
        row = {
            "step": step,
            "train_loss": float(train_loss[r]),
            "eval_loss": float(logged["eval_loss"][r]),
            "eval_accuracy": float(logged["eval_accuracy"][r]),
            "grad_norm": float(grad_norm[r]),
            "wall_seconds": wall_seconds,
        }
        profiles = {f"{n}_{kind}": np.asarray(logged[f"{n}_{kind}"][r])
                    for n in carry_names for kind in ("norms", "reach")}
        yield row, profiles | dynamics_profiles(logged, r)
