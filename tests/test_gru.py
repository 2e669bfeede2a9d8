"""The GRU: its parameter layout maps onto torch.nn.GRU, and the fast path gives torch's outputs
and input gradients (float64). Runs where PyTorch is installed (`make bench` installs it)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_vg.core import model, zoo

torch = pytest.importorskip("torch")

T, B, I, H = 9, 3, 2, 5


def torch_gru_params(seed: int = 0):
    """A float64 torch.nn.GRU with torch's own init, and the same params in lstm-vg's layout."""
    torch.manual_seed(seed)
    gru = torch.nn.GRU(I, H, dtype=torch.float64)
    with torch.no_grad():  # biases off zero, so a swapped bias would show
        for p in (gru.bias_ih_l0, gru.bias_hh_l0):
            p.uniform_(-0.5, 0.5)
    ours = {"w_x": gru.weight_ih_l0.detach().numpy().T, "w_h": gru.weight_hh_l0.detach().numpy().T,
            "b_x": gru.bias_ih_l0.detach().numpy(), "b_h": gru.bias_hh_l0.detach().numpy()}
    return gru, ours


def test_the_fast_path_gives_torch_outputs_and_input_gradients_in_float64():
    gru, params = torch_gru_params()
    rng = np.random.default_rng(0)
    xs, d_hs = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))
    x = torch.tensor(xs, requires_grad=True)
    expected_hs, _ = gru(x)
    (expected_hs * torch.tensor(d_hs)).sum().backward()
    with jax.enable_x64(True):
        cell_params = jax.tree.map(jnp.asarray, params)
        hs, vjp = jax.vjp(lambda x: model.states(zoo.get("gru"), 1, 0, True, cell_params, x, None),
                          jnp.asarray(xs))
        (d_xs,) = vjp(jnp.asarray(d_hs))
    np.testing.assert_allclose(hs, expected_hs.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d_xs, x.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_parameter_gradients_match_torch_in_its_layout():
    gru, params = torch_gru_params(1)
    rng = np.random.default_rng(1)
    xs, d_hs = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))
    out, _ = gru(torch.tensor(xs))
    (out * torch.tensor(d_hs)).sum().backward()
    with jax.enable_x64(True):
        grads = jax.grad(lambda p: jnp.sum(model.states(zoo.get("gru"), 1, 0, True, p, jnp.asarray(xs), None)
                                           * d_hs))(jax.tree.map(jnp.asarray, params))
    expected = {"w_x": gru.weight_ih_l0.grad.numpy().T, "w_h": gru.weight_hh_l0.grad.numpy().T,
                "b_x": gru.bias_ih_l0.grad.numpy(), "b_h": gru.bias_hh_l0.grad.numpy()}
    for name, value in expected.items():
        np.testing.assert_allclose(grads[name], value, rtol=1e-11, atol=1e-13, err_msg=name)
