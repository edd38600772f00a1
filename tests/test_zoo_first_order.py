"""The model zoo through the first-order entry points: surface, interpolate/barrier, train, gradcheck.

Every entry of ``zoo.ZOO`` (MLP, CNN + batch norm + residual, transformer encoder, LSTM, GRU,
LayerNorm + GELU, tied/frozen/unused parameters, dict output with dict batches) runs through each
entry point against an independent reference: a naive per-point loop (deep copy, load the
parameters, call the module) for surfaces and interpolation, a hand-written ``torch.optim`` loop
for training, and losslab's own central differences for gradcheck (itself tested against
torch.autograd.gradcheck in test_gradcheck.py).

Tolerances (float64 throughout): surfaces and interpolation agree to rtol 1e-10 -- the batched
evaluation sums the same per-example terms in another order (vmap over points, the fused
cross-entropy, a sum over dict batches divided by N instead of one mean), which moves the result
by a few ulps (~1e-15 relative); 1e-10 leaves five orders of margin and still catches a float32
evaluation (1e-7) or a wrong parameter/buffer (>= 1e-4). Training agrees to atol 1e-10 on every
parameter after the steps: the same operations, up to the reduction order of the mean.
"""
from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from losslab import gradcheck, train
from losslab.landscape import barrier, interpolate, surface
from zoo import ZOO, ZOO_BY_NAME, ZOO_IDS, reference_forward, tensors

RTOL = 1e-10  # see the module docstring


def _set_params(model: nn.Module, spec_names, theta: torch.Tensor) -> nn.Module:
    """A deep copy of ``model`` with the named trainable parameters taken from the flat ``theta``."""
    m = copy.deepcopy(model)
    named = dict(m.named_parameters())
    i = 0
    with torch.no_grad():
        for n in spec_names:
            p = named[n]
            p.copy_(theta[i:i + p.numel()].view_as(p))
            i += p.numel()
    assert i == theta.numel()
    return m.eval()


def _ref_loss(entry, model, X, y) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(reference_forward(entry, model, X), y))


def _kw(entry) -> dict:
    return {"output": entry.output, "batch_keys": entry.batch_keys}


@pytest.mark.parametrize("name", ZOO_IDS)
def test_surface_matches_a_naive_per_point_loop(name):
    entry = ZOO_BY_NAME[name]
    model, data = entry.model(0), entry.data(0)
    X, y = tensors(entry)
    s = surface(model, data, loss=entry.loss, directions="filter", resolution=(3, 3), span=0.5, seed=0,
                **_kw(entry))
    assert s.settings["dtype"] == "float64"  # follows the model's parameters (float64)
    assert s.settings["mode"] == "eval" and s.settings["caller_mode"] == "eval"
    base, dirs = torch.as_tensor(s.base), torch.as_tensor(s.directions)
    ref = np.array([[_ref_loss(entry, _set_params(model, s.param_names, base + a * dirs[0] + b * dirs[1]), X, y)
                     for b in s.axes[1]] for a in s.axes[0]])
    np.testing.assert_allclose(s.loss, ref, rtol=RTOL, atol=0)
    # accuracy at the centre (the model itself) against the model's own predictions
    centre = _set_params(model, s.param_names, base)
    with torch.no_grad():
        acc = float((reference_forward(entry, centre, X).argmax(1) == y).double().mean())
    assert s.accuracy is not None and s.accuracy[1, 1] == pytest.approx(acc, abs=1e-12)


@pytest.mark.parametrize("name", ZOO_IDS)
def test_interpolation_and_barrier_match_a_naive_loop(name):
    entry = ZOO_BY_NAME[name]
    a, b = entry.model(0), entry.model(1)
    X, y = tensors(entry)
    alphas = np.array([-0.25, 0.0, 0.3, 0.5, 1.0, 1.2])
    r = interpolate(a, b, entry.data(0), loss=entry.loss, alphas=alphas, **_kw(entry))
    from losslab.params import flatten_params, param_spec

    names = param_spec(a).names
    ta, tb = flatten_params(a), flatten_params(b)
    ref = np.array([_ref_loss(entry, _set_params(a, names, (1 - al) * ta + al * tb), X, y) for al in r.alphas])
    np.testing.assert_allclose(r.loss, ref, rtol=RTOL, atol=0)
    inside = (r.alphas >= 0) & (r.alphas <= 1)
    la, lb = ref[r.alphas == 0][0], ref[r.alphas == 1][0]
    assert r.barrier.height == pytest.approx(ref[inside].max() - (la + lb) / 2, rel=1e-9, abs=1e-12)
    bar = barrier(a, b, entry.data(0), loss=entry.loss, resolution=5, **_kw(entry))
    assert bar.loss_a == pytest.approx(la, rel=RTOL) and bar.loss_b == pytest.approx(lb, rel=RTOL)


def _hand_loop(entry, model, batches, *, lr, momentum, steps):
    """The reference: torch.optim.SGD on a deep copy, in train mode, one batch per step in order."""
    m = copy.deepcopy(model).train()
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=lr, momentum=momentum)
    losses = []
    for s in range(steps):
        X, y = batches[s % len(batches)]
        opt.zero_grad()
        L = F.cross_entropy(reference_forward(entry, m, X), y)
        L.backward()
        opt.step()
        losses.append(float(L.detach()))
    return m, losses


def _assert_same_params(a: nn.Module, b: nn.Module, atol: float = 1e-10):
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    for n in pa:
        torch.testing.assert_close(pa[n], pb[n], atol=atol, rtol=0, msg=f"parameter {n}")


@pytest.mark.parametrize("name", ZOO_IDS)
def test_train_matches_a_hand_written_torch_optim_loop(name):
    entry = ZOO_BY_NAME[name]
    model, data = entry.model(0), entry.data(0)
    if isinstance(data, list):  # dict batches: train() reads them as a loader, one batch per step
        batches = [(b[entry.batch_keys[0]], b[entry.batch_keys[1]]) for b in data]
    else:
        batches = [data]
    steps = 5
    traj = train(model, data, loss=entry.loss, optimizer="sgd", lr=0.05, optimizer_options={"momentum": 0.9},
                 steps=steps, eval_every=steps, **_kw(entry))
    ref, ref_losses = _hand_loop(entry, model, batches, lr=0.05, momentum=0.9, steps=steps)
    assert traj.status == "completed"
    np.testing.assert_allclose(traj.train_loss, ref_losses, rtol=1e-12, atol=1e-14)
    _assert_same_params(traj.model, ref)
    # the full-data evaluation of the returned model (eval mode, all batches weighted by size)
    X, y = tensors(entry)
    assert traj.final_loss == pytest.approx(_ref_loss(entry, ref.eval(), X, y), rel=1e-12)


@pytest.mark.parametrize("name", ["mlp", "cnn_bn_residual", "lstm"])
def test_train_on_a_dataloader_takes_its_minibatches_and_weighs_batches_exactly(name):
    """A DataLoader with ragged batches (48 = 20 + 20 + 8): each step takes the loader's next batch
    (a new epoch when it runs out), exactly like the hand-written loop; the full-data evaluation
    is the per-example mean over all 48 examples, not the mean of the three batch means."""
    entry = ZOO_BY_NAME[name]
    model = entry.model(0)
    X, y = tensors(entry)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=20, shuffle=False)
    batches = list(loader)
    steps = 4  # 3 batches, then the first of the second epoch
    traj = train(model, loader, loss="cross_entropy", optimizer="sgd", lr=0.05, steps=steps, eval_every=2)
    ref, ref_losses = _hand_loop(entry, model, batches, lr=0.05, momentum=0.0, steps=steps)
    np.testing.assert_allclose(traj.train_loss, ref_losses, rtol=1e-12, atol=1e-14)
    _assert_same_params(traj.model, ref)
    assert traj.settings["data"] == "loader" and traj.settings["n_train"] == 48
    assert traj.final_loss == pytest.approx(_ref_loss(entry, ref.eval(), X, y), rel=1e-12)
    if name == "cnn_bn_residual":
        return  # gd below: batch norm in train mode normalizes each loader batch by its own statistics,
        # so the gradient over 20 + 20 + 8 differs from one batch of 48 (that is what a loader means)
    # full-batch gd on the loader: one step on the gradient of all 48 examples
    g = train(model, loader, loss="cross_entropy", optimizer="gd", lr=0.1, steps=1, eval_every=1)
    full, _ = _hand_loop(entry, model, [(X, y)], lr=0.1, momentum=0.0, steps=1)
    _assert_same_params(g.model, full)


@pytest.mark.parametrize("name", ZOO_IDS)
def test_gradcheck_passes_on_every_architecture(name):
    entry = ZOO_BY_NAME[name]
    r = gradcheck(entry.model(0), entry.data(0), entry.loss, max_params_per_tensor=6, **_kw(entry))
    assert r.passed, (r.max_rel_err, [(t.name, t.max_rel_err) for t in r.tensors])
    X, y = tensors(entry)
    assert r.loss_value == pytest.approx(_ref_loss(entry, entry.model(0), X, y), rel=1e-12)


# -- output= and batch_keys=: the errors an entry gets without them -----------------------------
def test_dict_output_without_output_names_its_keys_and_suggests_the_key():
    entry = ZOO_BY_NAME["dict_io"]
    X, y = tensors(entry)
    for call in (lambda: surface(entry.model(), (X, y), loss="cross_entropy", resolution=3),
                 lambda: train(entry.model(), (X, y), loss="cross_entropy", steps=1),
                 lambda: gradcheck(entry.model(), (X, y), "cross_entropy")):
        with pytest.raises(ValueError, match=r"dict with keys \['logits', 'hidden'\].*output='logits'"):
            call()


def test_tuple_output_hint_is_an_index_and_a_wrong_index_names_the_length():
    class TupleOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 3)

        def forward(self, x):
            return self.lin(x), x.mean()

    X, y = tensors(ZOO_BY_NAME["mlp"], dtype=torch.float32)
    with pytest.raises(ValueError, match=r"tuple of length 2.*output=0"):
        surface(TupleOut(), (X, y), loss="cross_entropy", resolution=3)
    with pytest.raises(ValueError, match=r"output=5 is out of range.*length 2"):
        surface(TupleOut(), (X, y), loss="cross_entropy", resolution=3, output=5)
    with pytest.raises(ValueError, match="output='logits' names a key.*output=0"):
        surface(TupleOut(), (X, y), loss="cross_entropy", resolution=3, output="logits")
    # index and callable give the same surface
    m = TupleOut()
    s0 = surface(m, (X, y), loss="cross_entropy", resolution=3, output=0, seed=1)
    s1 = surface(m, (X, y), loss="cross_entropy", resolution=3, output=lambda out: out[0], seed=1)
    np.testing.assert_array_equal(s0.loss, s1.loss)


def test_dataclass_output_is_read_by_attribute_name():
    from dataclasses import dataclass

    @dataclass
    class Out:  # a Hugging Face ModelOutput-like result
        logits: torch.Tensor
        aux: torch.Tensor | None = None

    class DC(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 3)

        def forward(self, x):
            return Out(self.lin(x), x)

    X, y = tensors(ZOO_BY_NAME["mlp"], dtype=torch.float32)
    with pytest.raises(ValueError, match=r"Out with keys \['logits', 'aux'\].*output='logits'"):
        surface(DC(), (X, y), loss="cross_entropy", resolution=3)
    with pytest.raises(ValueError, match=r"output='logit' is not a key.*\['logits', 'aux'\]"):
        surface(DC(), (X, y), loss="cross_entropy", resolution=3, output="logit")
    dc = DC()
    s = surface(dc, (X, y), loss="cross_entropy", resolution=3, output="logits", seed=0)
    plain = surface(dc.lin, (X, y), loss="cross_entropy", resolution=3, seed=0)  # the same parameters, a tensor out
    np.testing.assert_allclose(s.loss, plain.loss, rtol=1e-6)


def test_dict_batches_without_batch_keys_name_the_keys_received():
    entry = ZOO_BY_NAME["dict_io"]
    data = entry.data()
    with pytest.raises(ValueError, match=r"dict with keys \['pixels', 'label'\].*batch_keys=\('pixels', 'label'\)"):
        surface(entry.model(), data, loss="cross_entropy", resolution=3, output="logits")
    with pytest.raises(ValueError, match=r"no key 'x'.*\['pixels', 'label'\]"):
        surface(entry.model(), data, loss="cross_entropy", resolution=3, output="logits", batch_keys=("x", "label"))
    with pytest.raises(ValueError, match=r"dict with keys \['pixels', 'label'\]"):
        train(entry.model(), data, loss="cross_entropy", steps=1, output="logits")


def test_a_single_dict_batch_is_all_the_data():
    entry = ZOO_BY_NAME["dict_io"]
    X, y = tensors(entry)
    s1 = surface(entry.model(), {"pixels": X, "label": y}, loss="cross_entropy", resolution=3, seed=0, **_kw(entry))
    s2 = surface(entry.model(), entry.data(), loss="cross_entropy", resolution=3, seed=0, **_kw(entry))
    np.testing.assert_allclose(s1.loss, s2.loss, rtol=RTOL)


# -- callable losses --------------------------------------------------------------------------
def test_callable_loss_per_example_and_mean_forms_equal_the_registry_loss_on_ragged_batches():
    """Batches of 20, 20 and 8: a mean-returning callable is weighted by batch size, so both forms
    give the full-data mean exactly as the registry's cross_entropy does."""
    entry = ZOO_BY_NAME["mlp"]
    model = entry.model()
    X, y = tensors(entry)
    batches = [(X[i:i + 20], y[i:i + 20]) for i in range(0, 48, 20)]

    def ce_mean(out, t):
        return F.cross_entropy(out, t)

    def ce_per_example(out, t):
        return F.cross_entropy(out, t, reduction="none")

    ref = surface(model, (X, y), loss="cross_entropy", resolution=3, seed=0).loss
    for fn in (ce_mean, ce_per_example):
        s = surface(model, batches, loss=fn, resolution=3, seed=0)
        np.testing.assert_allclose(s.loss, ref, rtol=RTOL)
        assert s.accuracy is None  # a callable is a regression-style loss unless callable_loss(task=...) says so
    with torch.no_grad():
        naive_mean_of_means = np.mean([float(F.cross_entropy(model(Xb), yb)) for Xb, yb in batches])
    assert abs(naive_mean_of_means - ref[1, 1]) > 1e-6  # the trap the weighting avoids is real here
    t = train(model, batches, loss=ce_mean, optimizer="sgd", lr=0.1, steps=3, eval_every=3)
    t2 = train(model, batches, loss="cross_entropy", optimizer="sgd", lr=0.1, steps=3, eval_every=3)
    np.testing.assert_allclose(t.train_eval_loss, t2.train_eval_loss, rtol=1e-12)


def test_callable_loss_with_a_wrong_shape_is_a_clear_error():
    entry = ZOO_BY_NAME["mlp"]
    X, y = tensors(entry)
    with pytest.raises(ValueError, match=r"returned shape \(48, 3\).*per-example losses of shape \(8,\)|"
                                         r"returned shape \(8, 3\).*per-example losses of shape \(8,\)"):
        surface(entry.model(), (X, y), loss=lambda out, t: out ** 2, resolution=3)


# -- dtype and mode ---------------------------------------------------------------------------
def test_a_float64_model_is_measured_in_float64_and_float32_on_request():
    entry = ZOO_BY_NAME["cnn_bn_residual"]
    model, (X, y) = entry.model(0), tensors(entry)
    s64 = surface(model, (X, y), loss="cross_entropy", resolution=3, seed=0)
    s32 = surface(model, (X, y), loss="cross_entropy", resolution=3, seed=0, dtype=torch.float32)
    assert s64.settings["dtype"] == "float64" and s32.settings["dtype"] == "float32"
    diff = np.abs(s64.loss - s32.loss).max()
    assert 1e-12 < diff < 1e-4  # float32 rounding is visible; float64 is what the model asked for


def test_a_model_in_train_mode_warns_once_and_the_mode_is_recorded():
    entry = ZOO_BY_NAME["cnn_bn_residual"]
    model, (X, y) = entry.model(0).train(), tensors(entry)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = surface(model, (X, y), loss="cross_entropy", resolution=3, seed=0)
    mode_warnings = [x for x in w if "train mode" in str(x.message)]
    assert len(mode_warnings) == 1 and "bn1" in str(mode_warnings[0].message)
    assert s.settings["caller_mode"] == "train" and s.settings["mode"] == "eval"
    assert model.training  # the caller's mode is untouched
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = interpolate(model, entry.model(1), (X, y), loss="cross_entropy", alphas=[0.5])
        g = gradcheck(model, (X, y), "cross_entropy", max_params_per_tensor=2)
    assert sum("train mode" in str(x.message) for x in w) == 2
    assert r.settings["caller_mode"] == "train" and g.caller_mode == "train"
    # a train-mode model without mode-dependent modules (a plain MLP) gives no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        surface(ZOO_BY_NAME["mlp"].model().train(), tensors(ZOO_BY_NAME["mlp"]), loss="cross_entropy", resolution=3)


def test_hessian_operator_reads_dict_batches_and_dict_outputs():
    """Pass-through of output=/batch_keys= to the Hessian operator: its dense matrix equals
    torch.func.hessian of the concatenated data's loss (float64; 1e-10 absolute: both are exact
    second derivatives summed in different orders)."""
    from torch.func import functional_call, hessian

    from losslab.hessian import hessian_operator, lambda_max
    from losslab.params import param_spec

    entry = ZOO_BY_NAME["dict_io"]
    model, (X, y) = entry.model(0), tensors(entry)
    op = hessian_operator(model, entry.data(0), "cross_entropy", **_kw(entry))
    spec = param_spec(model)

    def L(theta):
        out = functional_call(model, spec.unflatten(theta), (X,))["logits"]
        return F.cross_entropy(out, y)

    H = hessian(L)(spec.flatten(dict(model.named_parameters())).detach())
    torch.testing.assert_close(op.dense(), H, atol=1e-10, rtol=0)
    top = lambda_max(model, entry.data(0), "cross_entropy", tol=1e-10, **_kw(entry))
    assert float(top.eigenvalues[0]) == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-8)
