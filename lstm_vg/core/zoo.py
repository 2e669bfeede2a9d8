"""The registry of built-in cells: `zoo.get(name)`; adding a cell adds a line here."""

from __future__ import annotations

from lstm_vg.core.cells import LSTM, LSTM_WITHOUT_FORGET_GATE, RNN, Cell
from lstm_vg.core.gru import GRU

CELLS: dict[str, Cell] = {cell.name: cell for cell in (RNN, LSTM, GRU)}


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
