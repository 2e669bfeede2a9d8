"""Small statistics over seeds and the way numbers are shown to people, shared by the report,
the figures and the terminal tables. Nulls (None) and non-finite values count as missing."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def finite_or_none(value) -> float | None:
    """A finite number as a float, else None."""
    return float(value) if value is not None and math.isfinite(value) else None


def finite(values: Iterable) -> np.ndarray:
    """The finite values as float64, nulls and NaN/inf left out."""
    numbers = np.array([np.nan if v is None else float(v) for v in values], np.float64)
    return numbers[np.isfinite(numbers)]


def median(values: Iterable) -> float | None:
    """Median of the finite values; None when there are none."""
    values = finite(values)
    return finite_or_none(np.median(values)) if values.size else None


def mean_and_sd(values: Iterable) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1) of the finite values; sd None below 2."""
    values = finite(values)
    if values.size == 0:
        return None, None
    sd = finite_or_none(np.std(values, ddof=1)) if values.size > 1 else None
    return finite_or_none(np.mean(values)), sd


def number(value, digits: int = 3) -> str:
    """`digits` significant digits; "—" for a null."""
    return "—" if value is None else f"{value:.{digits}g}"


def scientific(value) -> str:
    """Ratios span many decades; an exact 0 (underflow) stays a plain 0."""
    return "—" if value is None else "0" if value == 0 else f"{value:.2e}"
