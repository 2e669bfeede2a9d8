"""The same workload with PyTorch's nn.LSTM / nn.GRU / nn.RNN(tanh) + Adam on the CPU; prints one
JSON line.

    python benchmarks/torch_peer.py W1 [--steps K] [--repeats N] [--threads N]

Adding task batches are drawn with torch ops every step, as lstm-vg draws them on the device;
independent seeds are separate models trained one after the other (aggregate model-steps/s).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from torch import nn
from workloads import WORKLOADS, Workload


def adding_batch(w: Workload, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """xs: (T, B, 2), targets: (B, 1): one marker in each half, the target the marked sum."""
    T, B, half = w.length, w.batch, w.length // 2
    values = torch.rand(T, B, generator=generator)
    first = torch.randint(0, half, (B,), generator=generator)
    second = torch.randint(half, T, (B,), generator=generator)
    steps = torch.arange(T)[:, None]
    markers = ((steps == first) | (steps == second)).float()
    return torch.stack([values, markers], -1), (values * markers).sum(0)[:, None]


class Model(nn.Module):
    def __init__(self, w: Workload):
        super().__init__()
        if w.cell == "lstm":
            self.recurrent = nn.LSTM(w.input_size, w.hidden)
        elif w.cell == "gru":
            self.recurrent = nn.GRU(w.input_size, w.hidden)
        else:
            self.recurrent = nn.RNN(w.input_size, w.hidden, nonlinearity="tanh")
        self.readout = nn.Linear(w.hidden, 1)

    def forward(self, xs: torch.Tensor) -> torch.Tensor:
        hs, _ = self.recurrent(xs)
        return self.readout(hs[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    w = WORKLOADS[args.workload]
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    models = [Model(w) for _ in range(w.seeds)]
    optimizers = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]

    def train(steps: int) -> float:
        for _ in range(steps):
            for model, optimizer in zip(models, optimizers, strict=True):
                xs, targets = adding_batch(w, generator)
                loss = torch.mean((model(xs) - targets) ** 2)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
        return float(loss.detach())

    train(args.steps)  # warm-up
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        loss = train(args.steps)
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    json.dump({
        "tool": "torch", "workload": w.name, "steps_per_call": args.steps, "threads": args.threads,
        "seconds_per_call": seconds,
        "model_steps_per_second": w.seeds * args.steps / seconds[len(seconds) // 2],
        "final_loss": loss, "torch": torch.__version__,
        "allocator": "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else "glibc",
    }, sys.stdout)
    print()


if __name__ == "__main__":
    main()
