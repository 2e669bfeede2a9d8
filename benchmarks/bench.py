"""`make bench`: lstm-vg's training loop against PyTorch on the reference workloads.

    python benchmarks/bench.py [--workloads W1,W2,W3,W4] [--repeats 5] [--steps 20]
                               [--json results/bench.json] [--no-peer]

Each measurement runs in its own process (ours, then PyTorch's right after it, same threads:
all the machine's cores). Prints a markdown table and writes every raw figure to a JSON file.
Model-steps/s is the median over the timed repeats, after one warm-up call; GFLOP/s counts the
matmul FLOPs of `Workload.flops_per_step`; the peak is a 2048³ float32 matmul measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from workloads import WORKLOADS

HERE = Path(__file__).resolve().parent


def measure(script: str, workload: str, *flags: str) -> dict:
    command = [sys.executable, str(HERE / script), workload, *flags]
    done = subprocess.run(command, capture_output=True, text=True, cwd=HERE)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_available() -> bool:
    return subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def devices(ours: dict) -> str:
    split = ours.get("batch_shards", 1) > 1
    return f"{ours['devices']}" + (", batch split" if split else "")


def table(rows: list[dict], peak: float) -> str:
    lines = [
        "| workload | lstm-vg model-steps/s | devices | compile s | GFLOP/s | % of peak | "
        "PyTorch model-steps/s | lstm-vg / PyTorch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        w, ours, peer = WORKLOADS[row["workload"]], row["ours"], row.get("peer")
        gflops = ours["model_steps_per_second"] * w.flops_per_step() / 1e9
        peer_rate = f"{peer['model_steps_per_second']:.1f}" if peer else "—"
        ratio = f"{ours['model_steps_per_second'] / peer['model_steps_per_second']:.2f}×" if peer else "—"
        lines.append(
            f"| {w.name}: {w.describe()} | {ours['model_steps_per_second']:.1f} | {devices(ours)} | "
            f"{ours['compile_seconds']:.1f} | {gflops:.1f} | {100 * gflops / peak:.1f} % | "
            f"{peer_rate} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed call")
    parser.add_argument("--json", type=Path, default=Path("results/bench.json"))
    parser.add_argument("--no-peer", action="store_true", help="skip PyTorch even if installed")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    peer = not args.no_peer and torch_available()
    timing = ["--repeats", str(args.repeats), "--steps", str(args.steps)]
    peak = measure("ours.py", "W1", "--repeats", "1", "--steps", "1", "--peak")["matmul_peak_gflops"]
    rows = []
    for name in args.workloads.split(","):
        w = WORKLOADS[name]
        # Also on one host device per core (`lstm-vg run`'s default on a CPU): several runs are
        # split over the devices; a single run's training batch is (`--split-batch`).
        layouts = [["--host-devices", "1"]]
        if cores > 1:
            layouts.append(["--host-devices", str(cores)] + (["--split-batch"] if w.seeds == 1 else []))
        for layout in layouts:
            ours = measure("ours.py", name, *timing, *layout)
            row = {"workload": name, "ours": ours}
            if peer:
                row["peer"] = measure("torch_peer.py", name, *timing, "--threads", str(cores))
            rows.append(row)
            print(table([row], peak).splitlines()[-1], file=sys.stderr, flush=True)
    text = table(rows, peak)
    machine = f"{cpu_name()}, {cores} cores, {platform.system()} {platform.machine()}"
    print(f"{machine}; float32 matmul peak (2048³): {peak:.0f} GFLOP/s\n\n{text}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine, "matmul_peak_gflops": peak, "command": " ".join(sys.argv),
        "workloads": {name: WORKLOADS[name].as_dict() for name in args.workloads.split(",")},
        "rows": rows,
    }, indent=1))
    print(f"\nraw figures: {args.json}")


if __name__ == "__main__":
    main()
