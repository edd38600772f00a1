"""Contract tests for the model registry and the loss registry.

References are independent of the code under test: torch's own nn.Linear / nn.RNN / nn.LSTM
built from the same seed or the same weights, formulas written out with python loops, and
population statistics of the initializers.
"""
import math

import pytest
import torch
from torch import nn

from losslab.losses import LOSSES, Loss, accuracy, get_loss
from losslab.models import INITS, MODELS, build
from losslab.models.nets import ACTIVATIONS
from losslab.registry import UnknownNameError



# name -> (options, input shape, output shape)
MODEL_CASES = {
    "linear": (dict(in_dim=3, out_dim=2), (5, 3), (5, 2)),
    "sigmoid_neuron": (dict(in_dim=3), (5, 3), (5, 1)),
    "polynomial": (dict(degree=4), (5, 1), (5, 1)),
    "mlp": (dict(in_dim=3, hidden=[6, 4], out_dim=2), (5, 3), (5, 2)),
    "deep_linear": (dict(widths=[3, 4, 4, 2]), (5, 3), (5, 2)),
    "rnn": (dict(in_dim=3, hidden=6, out_dim=2), (5, 7, 3), (5, 2)),
    "lstm": (dict(in_dim=3, hidden=6, out_dim=2, forget_bias=1.0), (5, 7, 3), (5, 2)),
}


def _params(m):
    return [p.detach().clone() for p in m.parameters()]


INIT_KINDS = ["default", "xavier", "kaiming", "orthogonal", "small"]


def test_cases_cover_registry():
    assert set(MODEL_CASES) == set(MODELS.names())
    assert set(INIT_KINDS) == set(INITS.names())


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
@pytest.mark.parametrize("init", INIT_KINDS)
def test_model_contract(name, init):
    opts, xin, yout = MODEL_CASES[name]
    state = torch.get_rng_state()
    m = build(name, init=init, seed=3, **opts)
    assert torch.equal(state, torch.get_rng_state())  # build does not touch the global RNG
    assert isinstance(m, nn.Module)
    x = torch.randn(*xin, generator=torch.Generator().manual_seed(0))
    out = m(x)
    assert out.shape == yout and torch.isfinite(out).all()
    same = build(name, init=init, seed=3, **opts)
    assert all(torch.equal(a, b) for a, b in zip(_params(m), _params(same)))
    other = build(name, init=init, seed=4, **opts)
    assert any(not torch.equal(a, b) for a, b in zip(_params(m), _params(other)))


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_dtype_option(name):
    opts, xin, yout = MODEL_CASES[name]
    m = build(name, dtype=torch.float64, **opts)
    assert all(p.dtype == torch.float64 for p in m.parameters())
    assert m(torch.randn(*xin, dtype=torch.float64)).dtype == torch.float64


def test_default_init_is_torch_default_under_the_seed():
    m = build("linear", in_dim=4, out_dim=3, seed=11)
    torch.manual_seed(11)
    ref = nn.Linear(4, 3)
    assert torch.equal(m.weight, ref.weight) and torch.equal(m.bias, ref.bias)


def test_unknown_names_and_options_list_valid_ones():
    with pytest.raises(UnknownNameError) as e:
        build("perceptron")
    for n in MODELS.names():
        assert n in str(e.value)
    with pytest.raises(UnknownNameError, match="orthogonal"):
        build("mlp", init="glorot")
    with pytest.raises(TypeError, match="valid options: in_dim, hidden"):
        build("mlp", widht=3)
    with pytest.raises(ValueError, match="valid: gelu, relu, sigmoid, tanh"):
        build("mlp", activation="swish")
    with pytest.raises(ValueError, match="two widths"):
        build("deep_linear", widths=[3])
    assert MODELS.get("Deep-Linear") is MODELS.get("deep_linear")  # names are normalized


def _weight_mats(m):
    return [(n, p.detach()) for n, p in m.named_parameters() if p.dim() >= 2]


def test_orthogonal_init():
    m = build("mlp", in_dim=8, hidden=[8, 5], out_dim=8, init="orthogonal", seed=0)
    mats = _weight_mats(m)
    assert [tuple(w.shape) for _, w in mats] == [(8, 8), (5, 8), (8, 5)]
    for _, w in mats:
        r, c = w.shape
        # (semi-)orthogonal: orthonormal rows when r <= c, orthonormal columns otherwise
        g = w @ w.T if r <= c else w.T @ w
        assert torch.allclose(g, torch.eye(min(r, c)), atol=1e-5)
    dl = build("deep_linear", widths=[4, 4, 4], init="orthogonal", seed=1)
    assert torch.allclose(dl.end_to_end() @ dl.end_to_end().T, torch.eye(4), atol=1e-5)


def test_small_init_and_scale():
    m = build("mlp", in_dim=4, hidden=[16], out_dim=2, init="small", seed=0)
    for _, w in _weight_mats(m):
        assert w.abs().max() < 1e-2  # N(0,1) * 1e-3: |w| < 1e-2 needs a 10-sigma draw
        assert w.abs().max() > 0
    # biases keep torch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert m.net[0].bias.abs().max() > 1e-2
    big = build("mlp", in_dim=200, hidden=[300], out_dim=2, init="small", init_scale=0.1, seed=0)
    w = big.net[0].weight
    assert abs(float(w.detach().std()) - 0.1) < 0.01  # 60000 draws: std error ~0.3%


def test_init_scale_multiplies_weights_only():
    a = build("mlp", in_dim=3, hidden=[5], out_dim=2, init="xavier", seed=2)
    b = build("mlp", in_dim=3, hidden=[5], out_dim=2, init="xavier", init_scale=2.5, seed=2)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        if p.dim() >= 2:
            assert torch.allclose(q, 2.5 * p)
        else:
            assert torch.equal(q, p)


@pytest.mark.parametrize("init,std", [("xavier", lambda fi, fo: math.sqrt(2 / (fi + fo))),
                                      ("kaiming", lambda fi, fo: math.sqrt(2 / fi))])
def test_xavier_kaiming_std(init, std):
    m = build("linear", in_dim=300, out_dim=200, init=init, seed=0)
    # 60000 draws: the sample std is within ~0.3% of the population std; allow 3%
    assert abs(float(m.weight.detach().std()) / std(300, 200) - 1) < 0.03


@pytest.mark.parametrize("init", ["default", "xavier", "orthogonal", "small"])
def test_lstm_forget_bias(init):
    m = build("lstm", in_dim=2, hidden=5, forget_bias=2.0, init=init, seed=0)
    h = 5
    # torch gate order: input, forget, cell, output; total forget bias = bias_ih + bias_hh
    assert torch.all(m.cell.bias_ih[h:2 * h] == 2.0) and torch.all(m.cell.bias_hh[h:2 * h] == 0.0)
    assert not torch.all(m.cell.bias_ih[:h] == 2.0)  # other gates untouched


def test_sequence_models_match_torch_rnn_lstm():
    x = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(1))
    for kind, ref_cls in (("rnn", nn.RNN), ("lstm", nn.LSTM)):
        m = build(kind, in_dim=3, hidden=5, out_dim=2, seed=0)
        ref = ref_cls(3, 5, batch_first=True)
        with torch.no_grad():
            for nm in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ref, nm + "_l0").copy_(getattr(m.cell, nm))
        seq, _ = ref(x)
        out, hs = m.forward_states(x)
        assert len(hs) == 6
        assert torch.allclose(torch.stack(hs, 1), seq, atol=1e-6)
        assert torch.allclose(out, m.readout(seq[:, -1]), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, T, features\)"):
        m(torch.randn(4, 3))


def test_deep_linear_structure():
    m = build("deep_linear", widths=[3, 5, 4, 2], seed=0)
    assert m.depth == 3
    assert [tuple(m.layers[p - 1].weight.shape) for p in (1, 2, 3)] == [(5, 3), (4, 5), (2, 4)]
    E = m.layers[2].weight @ m.layers[1].weight @ m.layers[0].weight
    assert torch.allclose(m.end_to_end(), E)
    x = torch.randn(7, 3)
    assert torch.allclose(m(x), x @ E.T, atol=1e-6)


def test_polynomial_and_sigmoid_neuron_formulas():
    p = build("polynomial", degree=3, seed=0)
    a = p.linear.weight[0].detach()
    x = torch.tensor([[0.5], [-1.0], [2.0]])
    ref = torch.tensor([[sum(float(a[k]) * float(v) ** k for k in range(4))] for v in x[:, 0]])
    assert torch.allclose(p(x), ref, atol=1e-5)
    s = build("sigmoid_neuron", in_dim=2, seed=0)
    xs = torch.tensor([[1.0, -2.0]])
    w, b = s.linear.weight[0].detach(), float(s.linear.bias.detach())
    z = float(w[0]) * 1.0 + float(w[1]) * -2.0 + b
    assert math.isclose(float(s(xs).detach()), 1 / (1 + math.exp(-z)), rel_tol=1e-6)


def test_mlp_options_build_their_layers():
    m = build("mlp", in_dim=2, hidden=[4, 4], out_dim=1, dropout=0.5, batch_norm=True, bias=False,
              activation="gelu")
    kinds = [type(l).__name__ for l in m.net]
    assert kinds.count("BatchNorm1d") == 2 and kinds.count("Dropout") == 2 and kinds.count("GELU") == 2
    assert all(l.bias is None for l in m.net if isinstance(l, nn.Linear))
    for act, cls in ACTIVATIONS.items():
        assert any(isinstance(l, cls) for l in build("mlp", activation=act).net)


def test_polynomial_rejects_in_dim():
    with pytest.raises(ValueError):
        build("polynomial", in_dim=3)


# ----------------------------------------------------------------------------- losses

OUT = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-2.0, 3.0, 1.0], [0.2, 0.1, -0.3]])
Y_REG = torch.tensor([[0.0, -0.5, 4.0], [1.0, 1.0, 1.0], [-1.0, 0.0, 1.5], [0.0, 0.0, 0.0]])
Y_CLS = torch.tensor([2, 0, 1, 1])


def _hand_regression(name, **o):
    """Per-example losses written out as python loops (the docstrings' formulas)."""
    res = []
    for f, y in zip(OUT.tolist(), Y_REG.tolist()):
        r = [a - b for a, b in zip(f, y)]
        if name == "mse":
            v = [e * e for e in r]
        elif name == "l1":
            v = [abs(e) for e in r]
        elif name == "huber":
            d = o["delta"]
            v = [0.5 * e * e if abs(e) <= d else d * (abs(e) - 0.5 * d) for e in r]
        elif name == "lp":
            v = [abs(e) ** o["p"] for e in r]
        res.append(sum(v) / len(v))
    return torch.tensor(res)


def _hand_classification(name, **o):
    res = []
    for f, y in zip(OUT.tolist(), Y_CLS.tolist()):
        if name == "cross_entropy":
            res.append(-(f[y] - math.log(sum(math.exp(v) for v in f))))
        elif name == "hinge":
            m = o["margin"]
            res.append(sum(max(0.0, m - f[y] + f[j]) for j in range(len(f)) if j != y) / len(f))
    return torch.tensor(res)


REG_CASES = [("mse", {}), ("l1", {}), ("huber", {"delta": 1.0}), ("huber", {"delta": 0.3}), ("lp", {"p": 4.0}),
             ("lp", {"p": 3.0})]
CLS_CASES = [("cross_entropy", {}), ("hinge", {"margin": 1.0}), ("hinge", {"margin": 2.0})]


def test_loss_cases_cover_registry():
    assert {n for n, _ in REG_CASES + CLS_CASES} | {"bce"} == set(LOSSES.names())


@pytest.mark.parametrize("name,opts", REG_CASES)
def test_regression_losses_match_formula(name, opts):
    loss = get_loss(name, **opts)
    pe = loss.per_example(OUT, Y_REG)
    assert pe.shape == (4,)
    assert torch.allclose(pe, _hand_regression(name, **opts), atol=1e-5)
    assert torch.allclose(loss(OUT, Y_REG), pe.mean())
    assert torch.allclose(loss.sum(OUT, Y_REG), pe.sum())
    assert loss.task == "regression" and accuracy(OUT, Y_REG, loss) is None


@pytest.mark.parametrize("name,opts", CLS_CASES)
def test_classification_losses_match_formula(name, opts):
    loss = get_loss(name, **opts)
    pe = loss.per_example(OUT, Y_CLS)
    assert pe.shape == (4,)
    assert torch.allclose(pe, _hand_classification(name, **opts), atol=1e-5)
    # float labels that are integers are accepted
    assert torch.allclose(loss.per_example(OUT, Y_CLS.float()), pe)
    acc = accuracy(OUT, Y_CLS, loss)
    assert acc.tolist() == [1.0, 1.0, 1.0, 0.0]  # argmax rows: 2, 0, 1, 0


def test_bce_matches_formula():
    loss = get_loss("bce")
    f = torch.tensor([[0.3], [-1.2], [2.0], [0.0]])
    y = torch.tensor([1.0, 0.0, 0.0, 1.0])
    s = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    ref = torch.tensor([-(t * math.log(s(z)) + (1 - t) * math.log(1 - s(z))) for z, t in zip(f[:, 0].tolist(), y.tolist())])
    pe = loss.per_example(f, y)
    assert pe.shape == (4,) and torch.allclose(pe, ref, atol=1e-6)
    assert torch.allclose(loss.per_example(f[:, 0], y.unsqueeze(1)), ref, atol=1e-6)  # (N,) logits also fine
    assert accuracy(f, y, loss).tolist() == [1.0, 1.0, 0.0, 0.0]


def test_mse_target_vector_broadcasts_to_column():
    loss = get_loss("mse")
    f = torch.tensor([[1.0], [2.0]])
    assert torch.allclose(loss.per_example(f, torch.tensor([0.0, 0.0])), torch.tensor([1.0, 4.0]))


@pytest.mark.parametrize("name,opts", REG_CASES + CLS_CASES)
def test_mean_over_uneven_batches_equals_full_loss(name, opts):
    loss = get_loss(name, **opts)
    g = torch.Generator().manual_seed(0)
    out = torch.randn(11, 3, generator=g, dtype=torch.float64)
    y = torch.randn(11, 3, generator=g, dtype=torch.float64) if loss.task == "regression" else \
        torch.randint(0, 3, (11,), generator=g)
    full = loss(out, y)
    total = sum(loss.sum(out[i:i + 4], y[i:i + 4]) for i in range(0, 11, 4))  # batches 4, 4, 3
    assert torch.allclose(total / 11, full, atol=1e-14)
    # the naive mean of batch means is NOT the full loss for uneven batches (why sums are used)
    naive = sum(loss(out[i:i + 4], y[i:i + 4]) for i in range(0, 11, 4)) / 3
    assert not torch.allclose(naive, full, atol=1e-10)


def test_bad_shapes_give_clear_errors():
    with pytest.raises(ValueError, match=r"output shape \(3, 2\) does not match target shape \(4, 2\)"):
        get_loss("mse")(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"\(N, C\) logits"):
        get_loss("cross_entropy")(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="3 outputs but 4 labels"):
        get_loss("cross_entropy")(torch.zeros(3, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="integer class labels"):
        get_loss("hinge")(torch.zeros(3, 2), torch.tensor([0.5, 1.0, 0.0]))
    with pytest.raises(ValueError, match="one logit per example"):
        get_loss("bce")(torch.zeros(3, 2), torch.zeros(3))


def test_unknown_loss_and_bad_options():
    with pytest.raises(UnknownNameError) as e:
        get_loss("squared")
    for n in LOSSES.names():
        assert n in str(e.value)
    with pytest.raises(TypeError, match="valid options: delta"):
        get_loss("huber", eps=1.0)
    with pytest.raises(ValueError, match="delta must be > 0"):
        get_loss("huber", delta=0)
    with pytest.raises(ValueError, match="p >= 1"):
        get_loss("lp", p=0.5)
    # dict and Loss pass-through
    assert get_loss({"name": "lp", "p": 3.0}).options == {"p": 3.0}
    lo = get_loss("mse")
    assert get_loss(lo) is lo and isinstance(lo, Loss)


def test_out_of_range_label_is_a_value_error():
    with pytest.raises(ValueError):
        get_loss("cross_entropy")(torch.zeros(3, 2), torch.tensor([0, 1, 5]))


def test_bce_rejects_non_binary_targets():
    with pytest.raises(ValueError):
        get_loss("bce")(torch.zeros(3, 1), torch.tensor([0.0, 1.0, 2.0]))


def test_hinge_matches_torch_and_has_a_hessian():
    """hinge is torch's multi_margin_loss formula in elementary ops, so it has second derivatives:
    its exact Hessian (through an MLP) equals central differences of the autograd gradient."""
    import torch.nn.functional as F

    from losslab.hessian import exact_hessian
    from losslab.params import flatten_params, load_flat

    g = torch.Generator().manual_seed(0)
    out, y = torch.randn(50, 4, generator=g, dtype=torch.float64), torch.randint(0, 4, (50,), generator=g)
    loss = get_loss("hinge", margin=0.7)
    torch.testing.assert_close(loss.per_example(out, y), F.multi_margin_loss(out, y, margin=0.7, reduction="none"),
                               rtol=0, atol=1e-15)
    m = build("mlp", in_dim=3, hidden=[4], out_dim=4, activation="tanh", seed=0).double()
    X, yy = torch.randn(30, 3, generator=g, dtype=torch.float64), torch.randint(0, 4, (30,), generator=g)
    H = exact_hessian(m, (X, yy), loss)
    theta = flatten_params(m)

    def grad_at(t):
        mm = load_flat(m, t)
        l = loss(mm(X), yy)
        return torch.cat([p.reshape(-1) for p in torch.autograd.grad(l, list(mm.parameters()))])

    h = 1e-6  # kinks: with 30 examples no margin sits within 1e-6 of zero at this seed (checked by the match)
    fd = torch.stack([(grad_at(theta + h * e) - grad_at(theta - h * e)) / (2 * h) for e in torch.eye(len(theta), dtype=torch.float64)])
    torch.testing.assert_close(H, (fd + fd.T) / 2, rtol=1e-6, atol=1e-7)
    assert H.abs().max() > 1e-3  # the network's curvature comes through (not a zero matrix)
