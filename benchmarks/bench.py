"""`make bench`: lstm-vg's training loop against PyTorch on the reference workloads.

    python benchmarks/bench.py [--workloads W1,W2,W3,W4,W5,W6] [--repeats 5] [--steps 20]
                               [--json results/bench.json] [--no-peer] [--zoo]

Each measurement runs in its own process (ours, then PyTorch's right after it, same threads:
all the machine's cores). Where Debian's libtcmalloc-minimal4 is installed, PyTorch is measured a
second time with it preloaded (LD_PRELOAD), as a user who cares about its speed runs it.
`--zoo` adds every built-in cell at W1's sizes (one device), so the price of the autodiff path
shows next to the fast paths. Prints markdown tables and writes every raw figure to a JSON file.
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
TCMALLOC = [Path(f"/usr/lib/{arch}-linux-gnu/libtcmalloc_minimal.so.4") for arch in ("x86_64", "aarch64")]
ZOO = ("lstm", "gru", "rnn", "indrnn", "exprnn", "lru")


def measure(script: str, workload: str, *flags: str, env: dict | None = None) -> dict:
    command = [sys.executable, str(HERE / script), workload, *flags]
    done = subprocess.run(command, capture_output=True, text=True, cwd=HERE,
                          env=None if env is None else os.environ | env)
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


def rate_and_ratio(ours: dict, peer: dict | None) -> str:
    if not peer:
        return "— | —"
    rate = peer["model_steps_per_second"]
    return f"{rate:.1f} | {ours['model_steps_per_second'] / rate:.2f}×"


def table(rows: list[dict], peak: float) -> str:
    lines = [
        "| workload | lstm-vg model-steps/s | devices | compile s | GFLOP/s | % of peak | "
        "PyTorch model-steps/s | lstm-vg / PyTorch | PyTorch + tcmalloc | lstm-vg / PyTorch + tcmalloc |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        w, ours = WORKLOADS[row["workload"]], row["ours"]
        gflops = ours["model_steps_per_second"] * w.flops_per_step() / 1e9
        lines.append(
            f"| {w.name}: {w.describe()} | {ours['model_steps_per_second']:.1f} | {devices(ours)} | "
            f"{ours['compile_seconds']:.1f} | {gflops:.1f} | {100 * gflops / peak:.1f} % | "
            f"{rate_and_ratio(ours, row.get('peer'))} | {rate_and_ratio(ours, row.get('peer_tcmalloc'))} |"
        )
    return "\n".join(lines)


def zoo_table(rows: dict[str, dict]) -> str:
    lstm = rows["lstm"]["model_steps_per_second"]
    lines = ["| cell (W1 sizes: T=100 H=128 B=64, 1 device) | path | lstm-vg model-steps/s | vs the LSTM |",
             "|---|---|---|---|"]
    for cell, ours in rows.items():
        path = "fast" if cell in ("lstm", "gru", "rnn") else "autodiff"
        lines.append(f"| {cell} | {path} | {ours['model_steps_per_second']:.1f} | "
                     f"{ours['model_steps_per_second'] / lstm:.2f}× |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed call")
    parser.add_argument("--json", type=Path, default=Path("results/bench.json"))
    parser.add_argument("--no-peer", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--zoo", action="store_true", help="also every built-in cell at W1's sizes")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    peer = not args.no_peer and torch_available()
    tcmalloc = next((str(p) for p in TCMALLOC if p.exists()), None) if peer else None
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
            if tcmalloc:
                row["peer_tcmalloc"] = measure("torch_peer.py", name, *timing, "--threads", str(cores),
                                               env={"LD_PRELOAD": tcmalloc})
            rows.append(row)
            print(table([row], peak).splitlines()[-1], file=sys.stderr, flush=True)
    text = table(rows, peak)
    zoo = {cell: measure("ours.py", "W1", *timing, "--host-devices", "1", "--cell", cell)
           for cell in ZOO} if args.zoo else {}
    if zoo:
        text += "\n\n" + zoo_table(zoo)
    machine = f"{cpu_name()}, {cores} cores, {platform.system()} {platform.machine()}"
    print(f"{machine}; float32 matmul peak (2048³): {peak:.0f} GFLOP/s\n\n{text}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine, "matmul_peak_gflops": peak, "command": " ".join(sys.argv),
        "workloads": {name: WORKLOADS[name].as_dict() for name in args.workloads.split(",")},
        "rows": rows, "zoo": zoo, "tcmalloc": tcmalloc,
    }, indent=1))
    print(f"\nraw figures: {args.json}")


if __name__ == "__main__":
    main()
