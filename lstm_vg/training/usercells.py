"""Cells researchers write, loaded from a file (`model.cell: my_cells.py:MinimalRNN`, relative to
the config file) or an importable module (`model.cell: package.module:Name`), instantiated with
`model.options` and checked against the cell protocol (docs/cells.md) before anything trains.

A cell that breaks the contract is a `UserError` of one line naming the file, the member, what it
returned and what is expected.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lstm_vg.errors import UserError

MEMBERS = ("carry_names", "init", "initial_carry", "step")
OPTIONAL = ("prepare", "sequence", "constrain", "learning_rate_scales", "recurrent_state", "keep_gate",
            "recurrent_matrix")  # docs/cells.md


class UserCell:
    """A researcher's cell object behind the protocol, with its reference and where its code came
    from. Compared by identity (a user's cell may define __eq__ without __hash__; jit needs one)."""

    def __init__(self, cell, name: str, source: dict):
        self.name, self.source = name, source
        self.carry_names = tuple(cell.carry_names)
        self.init, self.initial_carry, self.step = cell.init, cell.initial_carry, cell.step
        for member in OPTIONAL:
            if hasattr(cell, member):
                setattr(self, member, getattr(cell, member))

    def __repr__(self) -> str:
        return f"UserCell({self.name})"


def one_line(error: Exception) -> str:
    """"TypeError: the first line of its message"."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def import_target(target: str, base: Path, where: str):
    """(module, {"file" or "module": …, "sha256": …}) of "path/to/file.py" (relative to `base`)
    or "package.module"."""
    if target.endswith(".py"):
        path = (base / target).resolve()
        if not path.is_file():
            raise UserError(f"{where}: model.cell: {path}: no such file")
        spec = importlib.util.spec_from_file_location(f"lstm_vg_user_cells_{sha256(path)[:16]}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # the user's code: any error is theirs to see, in one line
            raise UserError(f"{path}: does not import: {one_line(error)}") from None
        return module, {"file": str(path), "sha256": sha256(path)}
    try:
        module = importlib.import_module(target)
    except Exception as error:
        raise UserError(f"{where}: model.cell: module {target!r} does not import: "
                        f"{one_line(error)}") from None
    file = getattr(module, "__file__", None)
    return module, {"module": target, "file": file, "sha256": sha256(Path(file)) if file else None}


MADE: dict[tuple, UserCell] = {}  # one object per reference, options and file content


def load(reference: str, options: tuple, base: str, where: str) -> UserCell:
    """The cell `reference` ("file.py:Name" or "package.module:Name") names, made with `options`
    ((name, value) pairs: `model.options`); the same object for the same reference, options and
    file content, so that runs which share it train in one batch."""
    target, _, name = reference.rpartition(":")
    path = (Path(base) / target).resolve() if target.endswith(".py") else None
    key = (reference, options, str(path), sha256(path) if path and path.is_file() else None)
    if key not in MADE:
        MADE[key] = make(target, name, options, Path(base), where)
    return MADE[key]


def make(target: str, name: str, options: tuple, base: Path, where: str) -> UserCell:
    reference = f"{target}:{name}"
    module, source = import_target(target, base, where)
    origin = source["file"] or target
    if not hasattr(module, name):
        raise UserError(f"{origin}: has no member {name!r} (model.cell: {reference})")
    made = getattr(module, name)
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in options}
    if isinstance(made, type):
        try:
            made = made(**kwargs)
        except Exception as error:
            raise UserError(f"{origin}: {name}(**model.options) raised {one_line(error)}; "
                            f"model.options were {kwargs}") from None
    elif kwargs:
        raise UserError(f"{where}: model.options: {name} in {origin} is not a class, so it takes no "
                        f"options; got {kwargs}")
    missing = [m for m in MEMBERS if not hasattr(made, m)]
    if missing:
        raise UserError(f"{origin}: {name} has no member {missing[0]!r}; a cell needs "
                        f"{', '.join(MEMBERS)} (docs/cells.md)")
    return UserCell(made, reference, source)


def check(cell: UserCell, input_size: int, hidden: int, dtype) -> None:
    """Run the cell's init once and its initial_carry and step on shapes, for a batch of 2:
    a one-line UserError for whatever breaks the contract."""
    origin = f"{cell.source['file'] or cell.source.get('module')}: {cell.name.rpartition(':')[2]}"
    names = cell.carry_names
    if "h" not in names or not all(isinstance(n, str) for n in names):
        raise UserError(f"{origin}.carry_names is {names!r}; expected a tuple of names with \"h\" "
                        f"(the state the readout reads)")
    dtype = jnp.dtype(dtype)
    try:
        params = cell.init(jax.random.key(0), input_size, hidden, dtype)
    except Exception as error:
        raise UserError(f"{origin}.init raised {one_line(error)}") from None
    leaves = jax.tree.leaves(params)
    if not leaves or not all(isinstance(p, (jax.Array, np.ndarray)) for p in leaves):
        raise UserError(f"{origin}.init returned {type(params).__name__} {params!r:.80}; expected a "
                        f"pytree of arrays")
    if not all(bool(jnp.all(jnp.isfinite(p))) for p in leaves):
        raise UserError(f"{origin}.init returned non-finite params (NaN or inf)")
    expected = jax.ShapeDtypeStruct((2, hidden), dtype)

    def carry_problem(carry, member: str) -> None:
        if not isinstance(carry, dict) or set(carry) != set(names):
            got = sorted(carry) if isinstance(carry, dict) else type(carry).__name__
            raise UserError(f"{origin}.{member} returned {got}; expected a dict with keys {list(names)}")
        h = carry["h"]
        if (h.shape, h.dtype) != (expected.shape, expected.dtype):
            raise UserError(f"{origin}.{member} returned h of shape {tuple(h.shape)} and dtype {h.dtype}; "
                            f"expected (batch, hidden) = {expected.shape} of {dtype}")

    if hasattr(cell, "prepare"):
        try:
            params = jax.eval_shape(cell.prepare, params)
        except Exception as error:
            raise UserError(f"{origin}.prepare raised {one_line(error)}") from None
    try:
        carry = jax.eval_shape(lambda p: cell.initial_carry(p, 2), params)
    except Exception as error:
        raise UserError(f"{origin}.initial_carry raised {one_line(error)}") from None
    carry_problem(carry, "initial_carry")
    x = jax.ShapeDtypeStruct((2, input_size), dtype)
    try:
        after = jax.eval_shape(cell.step, params, carry, x)
    except Exception as error:
        raise UserError(f"{origin}.step raised {one_line(error)}") from None
    carry_problem(after, "step")
    for name in names:
        if (after[name].shape, after[name].dtype) != (carry[name].shape, carry[name].dtype):
            raise UserError(f"{origin}.step returned {name} of shape {tuple(after[name].shape)} and dtype "
                            f"{after[name].dtype}; expected the initial carry's "
                            f"{tuple(carry[name].shape)} of {carry[name].dtype}")
