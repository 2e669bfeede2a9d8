"""The LRU's per-unit error signals on trained runs (docs/reproductions.md §7): for each layer,
how far |∂L/∂x_{t,j}| is from |λ_j|^{T−t} |∂L/∂x_{T,j}|, and how the whole state's decay compares
with its slowest eigenvalue's.

    .venv/bin/python experiments/lru_units.py results/reproduced/cells/lru_adding/length=400,seed=0 ...

A run folder needs its config.yaml, summary.json and params.npz (make reproduce writes them;
results/reproduced/ in git has no params.npz). The gradients are taken in float64 on 64 fresh
sequences of the run's task (key 12345) through the same zero perturbations the training probe
uses. Adding reads h_T only, so in the last layer the relation is exact; a lower layer's units
also get the error through the layers above at every step.
"""

import json
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lstm_vg import config
from lstm_vg.core import autodiff, model
from lstm_vg.training import plan


def params_tree(flat: dict) -> dict:
    """params.npz's "cell/layers/0/nu_log" keys back into the pytree (digit keys are list indices)."""
    tree: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split("/")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = jnp.asarray(value, jnp.float64)

    def lists(node):
        if not isinstance(node, dict):
            return node
        if node and all(k.isdigit() for k in node):
            return [lists(node[str(i)]) for i in range(len(node))]
        return {k: lists(v) for k, v in node.items()}

    return lists(tree)


def measure(folder: Path) -> list[str]:
    c = config.load(folder / "config.yaml")
    task = config.make_task(c.task, str(folder), folder)
    cell = plan.make_cell(c, task)
    with np.load(folder / "params.npz") as stored:
        params = params_tree({key: stored[key] for key in stored.files})
    xs, targets = task.sample(jax.random.key(12345), 64, jnp.float64)
    T, B, _ = xs.shape
    deltas = jax.tree.map(lambda d: d.astype(jnp.complex128 if jnp.iscomplexobj(d) else jnp.float64),
                          autodiff.zero_perturbations(cell, params["cell"], T, B))

    def loss(d):
        return jnp.sum(task.losses(model.apply(cell, task, params, xs, d), targets))

    grads = np.abs(np.asarray(jax.grad(loss)(deltas)["x"]))  # (T, B, layers·N)
    modulus = np.abs(np.asarray(cell.eigenvalues(params["cell"])))
    n = params["cell"]["layers"][0]["nu_log"].shape[0]
    summary = json.loads((folder / "summary.json").read_text())
    lines = []
    for layer in range(len(params["cell"]["layers"])):
        units = slice(layer * n, (layer + 1) * n)
        power = modulus[units] ** np.arange(T)[::-1, None, None] * grads[-1:, :, units]
        kept = power > 1e-280
        deviation = np.abs(grads[:, :, units] - power)[kept] / power[kept]
        norms = np.sqrt((grads[:, :, units] ** 2).sum(-1)).mean(1)
        lines.append(f"{folder}: layer {layer}: max|λ| {modulus[units].max():.5f}, median "
                     f"{np.median(modulus[units]):.4f}; |∂L/∂x_t,j| against |λ_j|^(T−t)|∂L/∂x_T,j|: "
                     f"max relative deviation {deviation.max():.2e}; ‖∂L/∂x_1‖/‖∂L/∂x_T‖ of the layer "
                     f"{norms[0] / norms[-1]:.3g}")
    slowest, measured = -math.log10(modulus.max()), summary["decay_rate_final"]
    lines.append(f"{folder}: the whole state decays at {measured:.3g} decades/step at the end, the "
                 f"slowest eigenvalue at {slowest:.2e} ({measured / slowest:.2g}×)")
    return lines


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    for path in sys.argv[1:]:
        print(*measure(Path(path)), sep="\n")
