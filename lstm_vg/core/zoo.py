"""The registry of built-in cells; adding a cell adds a line here.

`CELLS`: the cells with a hand-written fast path, ready made (their init options are the
config's `model.*` keys); `CLASSES`: cells on the protocol path, made with `model.options`
(`make`). `NAMES`: every built-in name.
"""

from __future__ import annotations

import inspect

from lstm_vg.core.cells import LSTM, LSTM_WITHOUT_FORGET_GATE, RNN, Cell
from lstm_vg.core.exprnn import ExpRNN
from lstm_vg.core.gru import GRU
from lstm_vg.core.indrnn import IndRNN
from lstm_vg.core.lru import LRU

CELLS: dict[str, Cell] = {cell.name: cell for cell in (RNN, LSTM, GRU)}
CLASSES: dict[str, type] = {"indrnn": IndRNN, "exprnn": ExpRNN, "lru": LRU}
NAMES = (*CELLS, *CLASSES)


def make(name: str, *, task_length: int | None = None, **options):
    """A protocol-path cell of `CLASSES` made with its options (TypeError/ValueError when they
    do not fit); a cell whose recipe depends on the sequence length (IndRNN) gets the task's
    T' as its `horizon` unless the options set one."""
    cls = CLASSES[name]
    if task_length is not None and "horizon" in inspect.signature(cls).parameters:
        options.setdefault("horizon", task_length)
    return cls(**options)


def get(name: str, forget_gate: bool = True) -> Cell:
    """The cell registered under `name`; `forget_gate=False` gives the LSTM of 1997 (f ≡ 1) and
    is ignored by cells without a forget gate."""
    try:
        cell = CELLS[name]
    except KeyError:
        raise KeyError(f"unknown cell {name!r}; allowed: {', '.join(CELLS)}") from None
    if cell is LSTM and not forget_gate:
        return LSTM_WITHOUT_FORGET_GATE
    return cell
