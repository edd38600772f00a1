"""HVP / GGN operators against independent dense references (torch.func.hessian on a flat
parameter function, float64), block restriction, frozen/unused parameters, non-mutation."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian, jacrev

from losslab.hessian import (exact_hessian, ggn_operator, hessian_operator, lanczos, layer_blocks)
from losslab.losses import get_loss
from losslab.models import build
from losslab.params import module_fingerprint, same_fingerprint





def _data(task: str, n: int = 40, in_dim: int = 3, out_dim: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, in_dim, generator=g, dtype=torch.float64)
    if task == "cross_entropy":
        y = torch.randint(0, out_dim, (n,), generator=g)
    else:
        y = torch.randn(n, out_dim, generator=g, dtype=torch.float64)
    return X, y


def _model(act: str, in_dim=3, out_dim=3, hidden=(5,), seed=0):
    return build("mlp", in_dim=in_dim, hidden=list(hidden), out_dim=out_dim, activation=act, seed=seed,
                 dtype=torch.float64)


def reference_hessian(model: nn.Module, X, y, loss: str) -> torch.Tensor:
    """Independent reference: torch.func.hessian of the mean loss over all data, as a function
    of the flat vector of requires_grad parameters (no batching, no losslab.hessian code)."""
    L = get_loss(loss)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    shapes = [p.shape for _, p in named]
    flat = torch.cat([p.detach().reshape(-1) for _, p in named]).double()

    def f(t):
        i, d = 0, {}
        for (n, _), s in zip(named, shapes):
            k = s.numel()
            d[n] = t[i:i + k].reshape(s)
            i += k
        d.update({n: b.clone() for n, b in model.named_buffers()})  # batch norm updates copies
        return L(functional_call(model, d, (X,)), y)

    return hessian(f)(flat)


CASES = [("tanh", "mse"), ("relu", "mse"), ("tanh", "cross_entropy"), ("relu", "cross_entropy")]


@pytest.mark.parametrize("act,loss", CASES)
@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
def test_hvp_matches_reference_with_batches(act, loss, method):
    X, y = _data(loss)
    model = _model(act)
    H = reference_hessian(model, X, y, loss)
    # batch_size 7 over 40 examples: unequal last batch; the (1/N) weighting must make it exact
    op = hessian_operator(model, (X, y), loss, method=method, batch_size=7, dtype=torch.float64)
    V = torch.randn(op.size, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for j in range(3):
        # float64 round-off only: 1e-10 relative is ~1e5 x machine epsilon of headroom
        torch.testing.assert_close(op.matvec(V[:, j]), H @ V[:, j], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(op.matmat(V), H @ V, rtol=1e-10, atol=1e-12)
    assert op.n_products == 6


@pytest.mark.parametrize("act,loss", CASES)
def test_lanczos_top5_and_residuals_on_mlps(act, loss):
    X, y = _data(loss)
    model = _model(act)
    H = reference_hessian(model, X, y, loss)
    w = torch.linalg.eigvalsh(H)
    op = hessian_operator(model, (X, y), loss, dtype=torch.float64)
    e = lanczos(op, 5, which="largest", tol=1e-10, seed=0)
    assert e.converged
    top = w.flip(0)[:5]
    # acceptance criterion of issue #4: top-5 within 1e-4 relative of eigvalsh
    assert torch.all((e.eigenvalues - top).abs() <= 1e-4 * top.abs())
    # eigenvectors: ||H v - lambda v|| small relative to ||H|| (measured with the reference H)
    R = H @ e.eigenvectors - e.eigenvectors * e.eigenvalues
    assert float(R.norm(dim=0).max()) <= 1e-5 * float(w.abs().max())
    # the reported residuals agree with the true ones
    torch.testing.assert_close(torch.tensor(e.report.residuals, dtype=torch.float64), R.norm(dim=0),
                               rtol=1e-3, atol=1e-9 * float(w.abs().max()))
    b = lanczos(op, 2, which="smallest", tol=1e-10, seed=0)
    assert torch.all((b.eigenvalues - w[:2]).abs() <= 1e-4 * float(w.abs().max()))


def test_exact_hessian_matches_reference():
    X, y = _data("cross_entropy")
    model = _model("tanh")
    H = reference_hessian(model, X, y, "cross_entropy")
    torch.testing.assert_close(exact_hessian(model, (X, y), "cross_entropy", batch_size=9), H,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_ggn_equals_dense_JT_Hout_J(loss):
    X, y = _data(loss)
    model = _model("tanh")
    L = get_loss(loss)
    named = [(n, p) for n, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for _, p in named])

    def fout(t):
        i, d = 0, {}
        for n, p in named:
            d[n] = t[i:i + p.numel()].reshape(p.shape)
            i += p.numel()
        return functional_call(model, d, (X,))

    out = fout(flat).detach()
    N, C = out.shape
    J = jacrev(fout)(flat).reshape(N * C, -1)  # (N*C, P)
    # H_out of the *mean* loss w.r.t. all outputs, dense (N*C, N*C): block diagonal
    Hout = hessian(lambda o: L(o.reshape(N, C), y))(out.reshape(-1))
    G = J.T @ Hout @ J
    op = ggn_operator(model, (X, y), loss, batch_size=11, dtype=torch.float64)
    V = torch.randn(op.size, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(op.matmat(V), G @ V, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(exact_hessian(model, (X, y), loss, kind="ggn"), G, rtol=1e-10, atol=1e-12)
    assert float(torch.linalg.eigvalsh(G).min()) >= -1e-12  # GGN of a convex loss is PSD


class WithUnusedAndFrozen(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2).double()
        self.unused = nn.Parameter(torch.ones(4, dtype=torch.float64))  # never touched by forward
        self.frozen = nn.Parameter(torch.full((2,), 0.5, dtype=torch.float64), requires_grad=False)

    def forward(self, x):
        return torch.tanh(self.lin(x)) * self.frozen


@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
def test_unused_parameter_zero_curvature_and_frozen_left_out(method):
    X, y = _data("mse", out_dim=2)
    model = WithUnusedAndFrozen()
    op = hessian_operator(model, (X, y), "mse", method=method)
    # own parameters come before submodules' in named_parameters; the frozen one is left out
    assert op.spec.names == ("unused", "lin.weight", "lin.bias")
    H = reference_hessian(model, X, y, "mse")  # hessian() gives zeros for the unused entries
    v = torch.randn(op.size, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    hv = op.matvec(v)
    torch.testing.assert_close(hv, H @ v, rtol=1e-10, atol=1e-12)
    assert torch.all(hv[:4] == 0)
    e = lanczos(op, 2, tol=1e-10)
    assert e.converged


def test_block_restriction_is_principal_submatrix():
    X, y = _data("cross_entropy")
    model = _model("relu", hidden=(4, 3))
    H = reference_hessian(model, X, y, "cross_entropy")
    assert layer_blocks(model) == ["net.0", "net.2", "net.4"]
    names = [n for n, _ in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    offs = torch.cumsum(torch.tensor([0] + sizes), 0).tolist()
    for block, chosen in [("net.2", ["net.2.weight", "net.2.bias"]), (["net.4.bias", "net.0.weight"],
                                                                       ["net.0.weight", "net.4.bias"]),
                          (lambda n: n.endswith("bias"), ["net.0.bias", "net.2.bias", "net.4.bias"])]:
        idx = torch.cat([torch.arange(offs[names.index(n)], offs[names.index(n) + 1]) for n in chosen])
        op = hessian_operator(model, (X, y), "cross_entropy", block=block)
        assert list(op.spec.names) == chosen
        torch.testing.assert_close(op.dense(), H[idx][:, idx], rtol=1e-10, atol=1e-12)


def test_model_not_mutated_including_modes_and_buffers():
    X, y = _data("cross_entropy")
    model = build("mlp", in_dim=3, hidden=[6], out_dim=3, batch_norm=True, dropout=0.2, seed=0)  # float32
    model.train()
    model.net[0].weight.requires_grad_(False)
    before = module_fingerprint(model)
    op = hessian_operator(model, (X.float(), y), "cross_entropy", dtype=torch.float64)
    lanczos(op, 2, tol=1e-8)
    ggn_operator(model, (X.float(), y), "cross_entropy").matvec(torch.ones(op.size))
    assert same_fingerprint(before, module_fingerprint(model))
    assert model.net[0].weight.dtype == torch.float32


def test_train_mode_batchnorm_hvp_matches_finite_differences():
    # in train mode batch norm uses batch statistics. torch.func.hessian disagrees with finite
    # differences here (measured: 0.10 off; BN's in-place running-stat update under jacfwd), so
    # the reference is central differences of plain autograd gradients of a deep copy.
    import copy

    X, y = _data("mse", out_dim=1)
    model = build("mlp", in_dim=3, hidden=[4], out_dim=1, batch_norm=True, seed=0, dtype=torch.float64).train()
    L = get_loss("mse")

    def grad_at(t):
        m = copy.deepcopy(model)
        i = 0
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(t[i:i + p.numel()].reshape(p.shape))
                i += p.numel()
        g = torch.autograd.grad(L(m(X), y), list(m.parameters()))
        return torch.cat([x.reshape(-1) for x in g])

    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    h = 1e-5
    cols = []
    for j in range(theta.numel()):
        e = torch.zeros_like(theta)
        e[j] = h
        cols.append((grad_at(theta + e) - grad_at(theta - e)) / (2 * h))
    H = torch.stack(cols, 1)
    op = hessian_operator(model, (X, y), "mse", train_mode=True)
    # central differences: truncation O(h^2) ~ 1e-10, round-off ~ eps/h ~ 1e-11
    torch.testing.assert_close(op.dense(), (H + H.T) / 2, rtol=1e-6, atol=1e-7)


def test_clear_errors():
    X, y = _data("mse")
    model = _model("tanh")
    with pytest.raises(ValueError, match="valid layer prefixes: net.0, net.2"):
        hessian_operator(model, (X, y), "mse", block="net.9")
    with pytest.raises(ValueError, match="double_backward"):
        hessian_operator(model, (X, y), "mse", method="finite_difference")
    op = hessian_operator(model, (X, y), "mse")
    with pytest.raises(ValueError, match=f"P={op.size}"):
        op.matvec(torch.ones(3))
    frozen = _model("tanh").requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        hessian_operator(frozen, (X, y), "mse")


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_cached_graph_fast_path_matches_reference_and_uncached(loss):
    # the full-batch fast path: the gradient graph is built once (create_graph=True) and every
    # product is one autograd.grad(g, theta, grad_outputs=v, retain_graph=True); it must agree
    # with the uncached path, with forward-over-reverse and with the independent reference
    X, y = _data(loss, seed=3)
    model = _model("tanh", hidden=(6, 4))
    H = reference_hessian(model, X, y, loss)
    V = torch.randn(H.shape[0], 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cached = hessian_operator(model, (X, y), loss)
    uncached = hessian_operator(model, (X, y), loss, cache_graph=False)
    f_o_r = hessian_operator(model, (X, y), loss, method="forward_over_reverse")
    first = cached.matvec(V[:, 0])
    assert len(cached._cache) == 1  # one batch -> one retained graph
    for j in range(4):
        hv = cached.matvec(V[:, j])
        # float64 round-off only (see test_hvp_matches_reference_with_batches)
        torch.testing.assert_close(hv, H @ V[:, j], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(hv, uncached.matvec(V[:, j]), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(hv, f_o_r.matvec(V[:, j]), rtol=1e-10, atol=1e-12)
    assert torch.equal(cached.matvec(V[:, 0]), first)  # the retained graph is reused unchanged
    assert uncached._cache == {} and cached.n_products == 6


def test_float32_fast_path_within_float32_roundoff():
    X, y = _data("cross_entropy", seed=4)
    model = _model("tanh", hidden=(8,))
    H = reference_hessian(model, X, y, "cross_entropy")
    op = hessian_operator(model, (X.float(), y), "cross_entropy", dtype=torch.float32)
    v = torch.randn(op.size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    hv = op.matvec(v)
    assert hv.dtype == torch.float32 and hv.shape == (op.size,)
    # float32: eps ~ 6e-8; a few hundred flops per entry -> 1e-4 relative to ||H v|| is generous
    err = float((hv.double() - H @ v).norm() / (H @ v).norm())
    assert err < 1e-4
