"""The reference workloads of `make bench`: adding task, Adam, clip 1.0, float32,
fresh data every step."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Workload:
    name: str
    cell: str  # "lstm" | "rnn" | "gru" (any built-in cell for lstm-vg; torch has these three)
    length: int  # T
    hidden: int  # H
    batch: int  # B
    seeds: int = 1  # independent models trained at once (aggregate model-steps/s)
    input_size: int = 2  # the adding task's (value, marker)

    @property
    def gates(self) -> int:
        return {"lstm": 4, "gru": 3}.get(self.cell, 1)

    def flops_per_step(self) -> float:
        """Matmul FLOPs of one training step of one model: forward 2·B·T·(I+H)·G·H, the backward
        pass twice that (gradients for the inputs and for the weights)."""
        forward = 2 * self.batch * self.length * (self.input_size + self.hidden) * self.gates * self.hidden
        return 3.0 * forward

    def describe(self) -> str:
        seeds = f", {self.seeds} seeds" if self.seeds > 1 else ""
        return f"{self.cell.upper()} T={self.length} H={self.hidden} B={self.batch}{seeds}"

    def as_dict(self) -> dict:
        return asdict(self)


WORKLOADS = {
    w.name: w
    for w in (
        Workload("W1", "lstm", 100, 128, 64),
        Workload("W2", "rnn", 100, 128, 64),
        Workload("W3", "lstm", 1000, 64, 32),
        Workload("W4", "lstm", 100, 128, 64, seeds=4),
        Workload("W5", "gru", 100, 128, 64),
        Workload("W6", "gru", 100, 128, 64, seeds=4),
    )
}
