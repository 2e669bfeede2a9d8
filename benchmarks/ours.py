"""Time lstm-vg's compiled training loop on one workload; prints one JSON line.

    python benchmarks/ours.py W1 [--steps K] [--repeats N] [--host-devices D]
    python benchmarks/ours.py W1 --cell lru --options '{"layers": 2}' [--length T] [--hidden H] …

Run as its own process: the number of host devices is fixed when JAX starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload")
    parser.add_argument("--steps", type=int, default=20, help="training steps per compiled call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--host-devices", type=int, default=1)
    parser.add_argument("--peak", action="store_true", help="also measure a 2048³ matmul")
    parser.add_argument("--length", type=int, help="override the workload's T")
    parser.add_argument("--cell", help="override the workload's cell (any built-in: gru, exprnn, …)")
    parser.add_argument("--options", type=json.loads, default={}, help="model.options as JSON")
    for size in ("hidden", "batch", "seeds"):
        parser.add_argument(f"--{size}", type=int, help=f"override the workload's {size}")
    parser.add_argument("--remat", type=int, default=0, help="train.remat block length")
    parser.add_argument("--split-batch", action="store_true", help="as `lstm-vg run --split-batch`")
    parser.add_argument("--vectorize", action="store_true",
                        help="vmap a device's runs (on a CPU the default runs them one after "
                             "another, lax.map)")
    return parser.parse_args()


def matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    """Best float32 GFLOP/s of a size³ matmul on one device with all its threads."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    f = jax.jit(jnp.matmul)
    f(a, a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        f(a, a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def main() -> None:
    args = parse()
    import jax

    jax.config.update("jax_num_cpu_devices", args.host_devices)  # before the first computation

    from workloads import WORKLOADS

    import lstm_vg

    w = WORKLOADS[args.workload]
    overrides = {k: getattr(args, k) for k in ("length", "cell", "hidden", "batch", "seeds")}
    w = dataclasses.replace(w, **{k: v for k, v in overrides.items() if v is not None})
    cfg = lstm_vg.config_from_dict({
        "task": {"name": "adding", "length": w.length},
        "model": {"cell": w.cell, "hidden": w.hidden, **({"options": args.options} if args.options else {})},
        "train": {"steps": args.steps, "batch": w.batch, "optimizer": "adam", "lr": 1e-3, "clip": 1.0,
                  "remat": args.remat},
        "log": {"every": args.steps, "eval_batch": w.batch, "probe_batch": w.batch},
        "seeds": w.seeds,
    }, name=w.name)
    [batch] = lstm_vg.plan(cfg, split_batch=args.split_batch)  # every device of this process
    devices, shards = batch.devices, batch.shards
    chunk, _ = batch.compile(vectorize=args.vectorize or None)
    states = batch.place(batch.fresh_states())
    start = time.perf_counter()
    compiled = chunk.lower(states).compile()
    compile_seconds = time.perf_counter() - start
    states, metrics = compiled(states)  # warm-up
    jax.block_until_ready(metrics)
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        states, metrics = compiled(states)
        jax.block_until_ready(metrics)
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    median = seconds[len(seconds) // 2]
    result = {
        "tool": "lstm-vg",
        "workload": w.name,
        "cell": w.cell,
        "options": args.options,
        "steps_per_call": args.steps,
        "devices": max(len(devices), 1),
        "batch_shards": shards,
        "compile_seconds": compile_seconds,
        "seconds_per_call": seconds,
        "model_steps_per_second": w.seeds * args.steps / median,
        "final_loss": float(metrics["loss"].mean()),
        "length": w.length,
        "remat": args.remat,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "jax": jax.__version__,
    }
    if args.peak:
        result["matmul_peak_gflops"] = matmul_peak()
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
