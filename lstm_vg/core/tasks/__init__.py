"""Long-dependency tasks, sampled on the device from a PRNG key; the length T is the knob.

Every task gives time-major inputs ``xs: (T', B, I)``, per-example losses, an accuracy, the loss of
the best input-blind predictor (``baseline_loss``) and its solved criterion.

adding (length T)
    x_t = (v_t, m_t), v_t ~ U[0, 1]; exactly two markers m = 1, one uniform in [0, ⌊T/2⌋) and one
    in [⌊T/2⌋, T). The target, read from the last step, is the sum of the two marked values.
    Loss: squared error. Baseline: always predict 1 (the mean of the sum), MSE = 2·(1/12) = 1/6.
    Accuracy: fraction with |error| < 0.04 (Hochreiter & Schmidhuber 1997's criterion).
    Solved: eval MSE ≤ threshold (default 0.01). Variant `hochreiter1997`: see `Adding1997`.

copy (delay T)
    Alphabet: 8 data symbols 0..7, blank 8, delimiter 9 (one-hot inputs, 10 wide). Input: 10
    random data symbols, T−1 blanks, the delimiter, 10 blanks (T' = T + 20 steps). Target: blank
    for the first T+10 steps, then the 10 symbols (9 output classes: data and blank).
    Loss: cross-entropy averaged over all T' steps. Baseline: blanks, then a uniform guess over
    the 8 symbols: 10·ln 8 / (T+20). Accuracy: on the 10 copied symbols. Solved: accuracy ≥
    threshold (default 0.99).

temporal_order (length T)
    Pascanu, Mikolov & Bengio (2013)'s form of Hochreiter & Schmidhuber's Experiment 6a (their
    code: `pascanur/trainingRNNs`, tempOrder.py). Six one-hot symbols: the relevant A, B
    (channels 0, 1) and the distractors c, d, e, f (2–5). A or B at one uniform step p0 ∈
    [⌊T/10⌋, 2⌊T/10⌋) and one p1 ∈ [⌊T/2⌋, ⌊T/2⌋ + ⌊T/10⌋), a uniform distractor at every other
    step. The class, read at the last step, is the pair as a binary number, 2·s0 + s1 with A = 0
    and B = 1: AA 0, AB 1, BA 2, BB 3 (tempOrder.py numbers them s0 + 2·s1, AB and BA swapped;
    nothing depends on the numbering). Loss: cross-entropy at the last step. Baseline: ln 4, the
    four classes being equally likely. Accuracy: argmax right. Solved: accuracy ≥ threshold
    (default 0.99). Needs T ≥ 10. Variants `hochreiter1997` (Experiment 6a itself) and
    `hochreiter1997_6b` (three relevant symbols, 8 classes): see `TemporalOrder1997`.

multiplication (length T)
    Pascanu et al.'s form of Hochreiter & Schmidhuber's Experiment 5 (multiplication.py): like
    adding, but the markers lie in [0, ⌊T/10⌋) and [⌊T/10⌋, ⌊T/10⌋ + ⌊4T/10⌋) and the target is
    the product of the two marked values. Loss: squared error. Baseline: always predict 1/4 (the
    mean), MSE = Var(X1·X2) = 1/9 − 1/16 = 7/144 (two values at two different steps are
    independent). Accuracy: fraction with squared error ≤ 0.04, the sequences Pascanu et al.'s
    RNN.py does not count as errors. Solved: accuracy ≥ threshold (default 0.99). Needs T ≥ 10.
    Variant `hochreiter1997`: see `Multiplication1997`.

pixels (T' = the image's P pixels + pad)
    An image read one pixel a step (row-major, or `order: permuted`: one fixed permutation),
    then `pad` zero steps; its class (10) read at the last step. Loss: cross-entropy at the last
    step. Baseline: the entropy of the train labels' frequencies. Accuracy: argmax right.
    Solved: accuracy ≥ threshold (default 0.8). The images are data, not drawn from a key: the
    task is made by `Pixels.of` from arrays the shell reads (`lstm_vg.datasets`); see `pixels`.

The classes live in `base` (what the tasks share), `arithmetic` (adding, multiplication), `copy`,
`temporal_order` and `pixels`; this module is their registry: `get(name, variant)`, `make(...)`.
"""

from __future__ import annotations

from lstm_vg.core.tasks.arithmetic import Adding, Adding1997, Multiplication, Multiplication1997
from lstm_vg.core.tasks.base import ClassAtTheEnd, SolvedBy, VariableLength
from lstm_vg.core.tasks.copy import Copy
from lstm_vg.core.tasks.pixels import ORDERS, PixelArrays, Pixels
from lstm_vg.core.tasks.temporal_order import TemporalOrder, TemporalOrder1997, TemporalOrder1997b

__all__ = ["Adding", "Adding1997", "ClassAtTheEnd", "Copy", "Multiplication", "Multiplication1997",
           "ORDERS", "PixelArrays", "Pixels", "SolvedBy", "TemporalOrder", "TemporalOrder1997",
           "TemporalOrder1997b", "VariableLength",
           "Task", "TASKS", "VARIANTS", "VARIANT_NAMES", "get", "make"]

Task = (Adding | Copy | TemporalOrder | Multiplication | Adding1997 | TemporalOrder1997 | TemporalOrder1997b
        | Multiplication1997 | Pixels)
TASKS: dict[str, type] = {task.name: task for task in (Adding, Copy, TemporalOrder, Multiplication, Pixels)}
VARIANTS: dict[tuple[str, str], type] = {
    (task.name, task.variant): task
    for task in (Adding1997, TemporalOrder1997, TemporalOrder1997b, Multiplication1997)
}
VARIANT_NAMES = ("standard", *sorted({variant for _, variant in VARIANTS}))


def get(name: str, variant: str = "standard") -> type:
    """The task class registered under `name` (`adding`, `copy`, `temporal_order`,
    `multiplication`, `pixels`) and `variant`."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}")
    if variant == "standard":
        return TASKS[name]
    try:
        return VARIANTS[name, variant]
    except KeyError:
        allowed = ["standard"] + [v for (n, v) in VARIANTS if n == name]
        raise KeyError(f"task {name!r} has no variant {variant!r}; allowed: {', '.join(allowed)}") from None


def make(name: str, length: int, threshold: float | None = None, variant: str = "standard") -> Task:
    """A task instance; `threshold=None` keeps the task's default solved criterion. Not for
    `pixels`, which needs its images: `Pixels.of` (`lstm_vg.config.make_task` reads them)."""
    cls = get(name, variant)
    if cls is Pixels:
        raise TypeError("pixels reads a data set: make it with tasks.Pixels.of(arrays, …)")
    return cls(length) if threshold is None else cls(length, threshold)
