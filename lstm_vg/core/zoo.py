"""The registry of built-in cells; adding a cell adds a line here.

`CELLS`: the cells with a hand-written fast path, ready made (their init options are the
config's `model.*` keys); `CLASSES`: cells on the protocol path, made with `model.options`
(`make`). `NAMES`: every built-in name.
"""

from __future__ import annotations

from lstm_vg.core.cells import LSTM, LSTM_WITHOUT_FORGET_GATE, RNN, Cell
from lstm_vg.core.gru import GRU
from lstm_vg.core.lru import LRU

CELLS: dict[str, Cell] = {cell.name: cell for cell in (RNN, LSTM, GRU)}
CLASSES: dict[str, type] = {"lru": LRU}
NAMES = (*CELLS, *CLASSES)


def make(name: str, **options):
    """A protocol-path cell of `CLASSES` made with its options (TypeError/ValueError when they
    do not fit)."""
    return CLASSES[name](**options)


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
