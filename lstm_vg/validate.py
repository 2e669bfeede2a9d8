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
           optional=False, or_code=False):
    """A config field: its Python kind (`dict`: a mapping of names to plain values, kept as a
    sorted tuple of pairs), allowed choices (a tuple, or a function that returns one: registries
    that live in the JAX core are asked only when a value is checked; `or_code`: or a reference
    to code, "file.py:Name" or "package.module:Name") or range, and whether null is allowed."""
    rules = dict(kind=kind, choices=choices, low=low, low_open=low_open, high=high,
                 high_open=high_open, optional=optional, or_code=or_code)
    return field(default=default, metadata=rules)


def is_code_reference(value: str) -> bool:
    """"my_cells.py:MinimalRNN" or "package.module:Name"."""
    target, sep, name = value.rpartition(":")
    return bool(sep and target and name.isidentifier())


PLAIN = (int, float, str, bool, type(None))


def check_mapping(value, where: str) -> tuple:
    """A mapping of names to plain values (numbers, text, booleans, null, or lists of them) as a
    sorted, hashable tuple of (name, value) pairs, lists as tuples."""
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected a mapping of option names to values, got {type_name(value)}")
    pairs = []
    for key, item in value.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise UserError(f"{where}: {key!r}: option names are identifiers (keyword arguments)")
        if isinstance(item, list) and all(isinstance(v, PLAIN) for v in item):
            item = tuple(item)
        elif not isinstance(item, PLAIN):
            raise UserError(f"{where}.{key}: expected a number, text, true/false, null or a list of "
                            f"them, got {type_name(item)}")
        pairs.append((key, item))
    return tuple(sorted(pairs))


def type_name(value) -> str:
    """How a YAML value's type is named in messages."""
    return "null" if value is None else type(value).__name__


def suggestion(key: str, allowed) -> str:
    """"did you mean 'x'?" for a close key, else the allowed keys."""
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"


def check_names(rules: dict, value, where: str) -> tuple:
    """A list of distinct names, each one of the field's choices, as a tuple."""
    choices = rules["choices"]() if callable(rules["choices"]) else rules["choices"]
    if not isinstance(value, list):
        raise UserError(f"{where}: expected a list of names out of {', '.join(choices)} ([] for none), "
                        f"got {type_name(value)} {value!r}")
    for i, name in enumerate(value):
        if name not in choices:
            raise UserError(f"{where}[{i}]: {name!r} is not allowed; allowed: {', '.join(choices)}")
    if len(set(value)) != len(value):
        raise UserError(f"{where}: names must be distinct, got {value}")
    return tuple(value)


def check_value(rules: dict, value, where: str):
    """`value` converted to the field's kind, or UserError naming `where`."""
    kind = rules["kind"]
    if value is None:
        if rules["optional"]:
            return None
        raise UserError(f"{where}: must not be empty")
    if kind is dict:
        return check_mapping(value, where)
    if kind is list:
        return check_names(rules, value, where)
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
    code = rules.get("or_code") and is_code_reference(value)
    if choices and value not in choices and not code:
        also = ", or your own as file.py:Name or package.module:Name" if rules.get("or_code") else ""
        raise UserError(f"{where}: {value!r} is not allowed; allowed: {', '.join(choices)}{also}")
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


def apply_override(raw: dict, assignment: str, top_level) -> dict:
    """raw with `section.key=value` set (the value parsed as YAML: numbers, lists, null); the
    first part of the key must be one of `top_level`."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--set {assignment}: expected key.path=value, e.g. model.hidden=64")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise UserError(f"--set {assignment}: the value is not valid YAML") from None
    # sweep keys are themselves dotted: sweep.model.cell=[rnn] sets sweep["model.cell"]
    path = key.split(".", 1) if key.startswith("sweep.") else key.split(".")
    if path[0] not in top_level:
        raise UserError(f"--set {assignment}: {path[0]}: unknown key; {suggestion(path[0], top_level)}")
    node = raw
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserError(f"--set {assignment}: {part} is not a mapping")
        node = child
    node[path[-1]] = value
    return raw


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
