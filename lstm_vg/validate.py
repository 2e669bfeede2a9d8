"""Config fields with their rules, YAML reading, and the one-line errors both raise.

Every user mistake is a `UserError` with one line: "<file>: <key>: <problem>; <what is allowed>".
"""

from __future__ import annotations

import difflib
import math
from dataclasses import field
from pathlib import Path

import yaml

from lstm_vg.errors import UserError


def option(default, kind, *, choices=None, low=None, low_open=False, high=None, high_open=False,
           optional=False):
    """A config field: its Python kind, allowed choices (a tuple, or a function that returns
    one: registries that live in the JAX core are asked only when a value is checked) or
    range, and whether null is allowed."""
    rules = dict(kind=kind, choices=choices, low=low, low_open=low_open, high=high,
                 high_open=high_open, optional=optional)
    return field(default=default, metadata=rules)


def type_name(value) -> str:
    """How a YAML value's type is named in messages."""
    return "null" if value is None else type(value).__name__


def suggestion(key: str, allowed) -> str:
    """"did you mean 'x'?" for a close key, else the allowed keys."""
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"


def check_value(rules: dict, value, where: str):
    """`value` converted to the field's kind, or UserError naming `where`."""
    kind = rules["kind"]
    if value is None:
        if rules["optional"]:
            return None
        raise UserError(f"{where}: must not be empty")
    if kind is float and isinstance(value, str):
        try:  # PyYAML reads `1e-3` (no dot) as a string; accept what a user obviously meant
            value = float(value)
        except ValueError:
            pass
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
        bool: isinstance(value, bool),
    }[kind]
    if not ok:
        raise UserError(f"{where}: expected {kind.__name__}, got {type_name(value)} {value!r}")
    value = kind(value)
    if kind is float and not math.isfinite(value):
        raise UserError(f"{where}: must be a finite number, got {value!r}")
    choices = rules["choices"]() if callable(rules["choices"]) else rules["choices"]
    if choices and value not in choices:
        raise UserError(f"{where}: {value!r} is not allowed; allowed: {', '.join(choices)}")
    low, high = rules["low"], rules["high"]
    if low is not None and (value <= low if rules["low_open"] else value < low):
        raise UserError(f"{where}: must be {'>' if rules['low_open'] else '≥'} {low}, got {value!r}")
    if high is not None and (value >= high if rules["high_open"] else value > high):
        raise UserError(f"{where}: must be {'<' if rules['high_open'] else '≤'} {high}, got {value!r}")
    return value


def folder_name(name, where: str) -> str:
    """A `name:` that names a results folder: text, no '/', not hidden."""
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise UserError(f"{where}: name: expected a folder name (no '/'), got {name!r}")
    return name


def read_yaml(path: Path):
    """The parsed YAML of `path` (None for an empty file), or a one-line UserError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read: {error.__class__.__name__}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise UserError(f"{path}: invalid YAML{at}: {problem}") from None
