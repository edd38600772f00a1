"""Loss surfaces against an independent per-point reference loop (load_flat copy + plain forward)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from losslab.data import load
from losslab.landscape import (DIRECTIONS, Surface, barrier, evaluate_points, explicit_directions, interpolate,
                               line_through, pca_directions, plane_through, project_trajectory, random_curves,
                               random_directions, surface)
from losslab.landscape.evaluate import Evaluator
from losslab.losses import accuracy, get_loss
from losslab.models import build
from losslab.params import flatten_params, load_flat, module_fingerprint, same_fingerprint

# float32 sums of a few hundred per-example losses, evaluated in a different order (vmap/bmm
# vs a plain forward, first layer split as X W0^T + a X D^T): rounding ~1e-7 per op, so 1e-5
# relative is the contract of the issue with margin.
RTOL32 = 1e-5


def reference_losses(model, X, y, loss, base, dirs, coords, *, bn="eval"):
    """Straightforward loop: a fresh copy of the model at each point, plain forward on all data."""
    loss = get_loss(loss)
    out_l, out_a = [], []
    for c in torch.as_tensor(coords, dtype=base.dtype):
        m = load_flat(model, base + c @ dirs)
        if bn == "recompute":
            _update_bn(m, X)
        m.eval()
        with torch.no_grad():
            out = m(X)
        out_l.append(float(loss(out, y)))
        a = accuracy(out, y, loss)
        out_a.append(float(a.mean()) if a is not None else float("nan"))
    return np.array(out_l), np.array(out_a)


def _update_bn(m, X, batch_size=None):
    loader = [X] if batch_size is None else list(X.split(batch_size))
    torch.optim.swa_utils.update_bn(loader, m)


@pytest.fixture(scope="module")
def digits():
    sp = load("digits", seed=0)
    return sp.train.X[:300], sp.train.y[:300]


def mlp(seed=0, **kw):
    opts = dict(in_dim=64, hidden=[32], out_dim=10, activation="tanh")
    opts.update(kw)
    return build("mlp", seed=seed, **opts)


def small_cnn():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    # non-trivial running statistics, then a (caller-visible) train-mode flag we must not change
    with torch.no_grad():
        net.train()
        for _ in range(3):
            net(torch.randn(32, 1, 8, 8) * 2 + 0.5)
    return net


def grid_coords(r=5, span=1.0):
    a = np.linspace(-span, span, r)
    X, Y = np.meshgrid(a, a, indexing="ij")
    return torch.as_tensor(np.stack([X.ravel(), Y.ravel()], 1))


@pytest.mark.parametrize("affine", [True, False])
def test_mlp_surface_equals_reference(digits, affine):
    X, y = digits
    m = mlp()
    s = surface(m, (X, y), loss="cross_entropy", resolution=5, span=1.0, affine=affine, chunk_size=7)
    assert s.info["affine_first_layer"] is affine
    d = random_directions(m, kind="filter", k=2, seed=0)
    ref_l, ref_a = reference_losses(m, X, y, "cross_entropy", d.base, d.vectors, grid_coords())
    np.testing.assert_allclose(s.loss.ravel(), ref_l, rtol=RTOL32)
    np.testing.assert_allclose(s.accuracy.ravel(), ref_a, atol=1e-6)  # counts / 300: exact


def test_sequential_affine_path_with_regression(digits):
    X, _ = digits
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 16), nn.GELU(), nn.Linear(16, 3))
    y = torch.randn(X.shape[0], 3)
    fast = surface(net, (X, y), loss="mse", resolution=4, directions="layer", affine=True)
    d = random_directions(net, kind="layer", k=2, seed=0)
    ref_l, _ = reference_losses(net, X, y, "mse", d.base, d.vectors, grid_coords(4))
    np.testing.assert_allclose(fast.loss.ravel(), ref_l, rtol=RTOL32)
    assert fast.accuracy is None


def test_cnn_batchnorm_eval_equals_reference_and_not_mutated():
    torch.manual_seed(2)
    X, y = torch.randn(40, 1, 8, 8), torch.randint(0, 10, (40,))
    net = small_cnn()
    fp = module_fingerprint(net)
    s = surface(net, (X, y), loss="cross_entropy", resolution=4, span=0.5)
    assert same_fingerprint(fp, module_fingerprint(net)) and net.training
    d = random_directions(net, kind="filter", k=2, seed=0)
    ref_l, _ = reference_losses(net, X, y, "cross_entropy", d.base, d.vectors, grid_coords(4, 0.5))
    np.testing.assert_allclose(s.loss.ravel(), ref_l, rtol=RTOL32)


@pytest.mark.parametrize("batched_data", [False, True])
def test_cnn_batchnorm_recompute_equals_update_bn(batched_data):
    torch.manual_seed(3)
    X, y = torch.randn(45, 1, 8, 8), torch.randint(0, 10, (45,))
    net = small_cnn()
    fp = module_fingerprint(net)
    bs = 20 if batched_data else None  # 20, 20, 5: equal weight per batch, as update_bn
    data = list(zip(X.split(20), y.split(20))) if batched_data else (X, y)
    s = surface(net, data, loss="cross_entropy", resolution=3, span=0.5, bn="recompute")
    assert same_fingerprint(fp, module_fingerprint(net))
    d = random_directions(net, kind="filter", k=2, seed=0)
    ref = []
    for c in grid_coords(3, 0.5).float():
        m = load_flat(net, d.base + c @ d.vectors)
        _update_bn(m, X, bs)
        m.eval()
        with torch.no_grad():
            ref.append(float(get_loss("cross_entropy")(m(X), y)))
    np.testing.assert_allclose(s.loss.ravel(), ref, rtol=RTOL32)
    # and it differs from the eval-mode surface (the statistics matter here)
    s_eval = surface(net, data, loss="cross_entropy", resolution=3, span=0.5)
    assert np.abs(s_eval.loss - s.loss).max() > 1e-3


def test_lstm_falls_back_to_loop_and_equals_reference():
    torch.manual_seed(4)
    X, y = torch.randn(20, 5, 3), torch.randn(20, 2)
    m = build("lstm", in_dim=3, hidden=6, out_dim=2)
    fp = module_fingerprint(m)
    s = surface(m, (X, y), loss="mse", resolution=3, dim=2, directions="gaussian")
    assert s.info["strategy"] == "loop"  # aten::lstm_cell has no vmap batching rule
    assert same_fingerprint(fp, module_fingerprint(m))
    d = random_directions(m, kind="gaussian", k=2, seed=0)
    ref_l, _ = reference_losses(m, X, y, "mse", d.base, d.vectors, grid_coords(3))
    np.testing.assert_allclose(s.loss.ravel(), ref_l, rtol=RTOL32)


def test_auto_takes_the_loop_where_vmap_would_run_example_by_example():
    """nn.TransformerEncoderLayer's fused eval kernel has no vmap batching rule: functorch then runs it
    example by example (and warns). strategy="auto" takes the per-point loop after that first chunk,
    without passing functorch's warning on, and gives the numbers strategy="vmap" gives."""
    import warnings

    from zoo import ZOO_BY_NAME, tensors

    entry = ZOO_BY_NAME["transformer"]
    m = entry.model(0, torch.float32)
    X, y = tensors(entry, 0, torch.float32)
    kw = dict(loss="cross_entropy", resolution=4, directions="gaussian", seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = surface(m, (X, y), **kw)
    assert s.info["strategy"] == "loop"
    assert not [w for w in caught if "batching rule" in str(w.message)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = surface(m, (X, y), strategy="vmap", **kw)
    np.testing.assert_allclose(s.loss, v.loss, rtol=RTOL32)


def test_dataloader_equals_full_tensors(digits):
    X, y = digits
    m = mlp(activation="relu")
    full = surface(m, (X, y), loss="cross_entropy", resolution=4)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    streamed = surface(m, loader, loss="cross_entropy", resolution=4)
    gen = surface(m, ((a, b) for a, b in zip(X.split(70), y.split(70))), loss="cross_entropy", resolution=4)
    np.testing.assert_allclose(streamed.loss, full.loss, rtol=RTOL32)
    np.testing.assert_allclose(gen.loss, full.loss, rtol=RTOL32)
    np.testing.assert_allclose(streamed.accuracy, full.accuracy, atol=1e-6)


def test_float64_option_matches_reference_tightly(digits):
    X, y = digits
    m = mlp()
    s = surface(m, (X, y), loss="cross_entropy", resolution=3, dtype=torch.float64)
    d = random_directions(m, kind="filter", k=2, seed=0)
    ref_l, _ = reference_losses(m.double(), X.double(), y, "cross_entropy", d.base.double(), d.vectors.double(),
                                grid_coords(3))
    np.testing.assert_allclose(s.loss.ravel(), ref_l, rtol=1e-12)  # float64 rounding only


def test_filter_normalized_slice_norms():
    net = small_cnn()
    d = random_directions(net, kind="filter", k=2, seed=5)
    params = dict(net.named_parameters())
    for vec in d.vectors:
        dd = d.spec.unflatten(vec)
        for n, p in params.items():
            if p.dim() > 1:
                pn = p.detach().reshape(p.shape[0], -1).norm(dim=1)
                dn = dd[n].reshape(p.shape[0], -1).norm(dim=1)
                # the definition: ||d_i|| = ||theta_i|| ||g_i|| / (||g_i|| + 1e-10) = ||theta_i|| to float rounding
                torch.testing.assert_close(dn, pn, rtol=1e-5, atol=1e-7)
            else:
                assert torch.count_nonzero(dd[n]) == 0  # biases and BN params ignored by default
    with_b = random_directions(net, kind="filter", k=1, seed=5, include_biases=True)
    dd = with_b.spec.unflatten(with_b.vectors[0])
    for n, p in params.items():
        if p.dim() == 1:
            torch.testing.assert_close(dd[n].norm(), p.detach().norm(), rtol=1e-5, atol=1e-7)


def test_layer_and_model_norms():
    m = mlp()
    params = dict(m.named_parameters())
    dl = random_directions(m, kind="layer", k=1, seed=1)
    for n, v in dl.spec.unflatten(dl.vectors[0]).items():
        want = params[n].detach().norm() if params[n].dim() > 1 else torch.tensor(0.0)
        torch.testing.assert_close(v.norm(), want, rtol=1e-5, atol=1e-7)
    dm = random_directions(m, kind="model", k=1, seed=1)
    wn = torch.sqrt(sum(p.detach().pow(2).sum() for p in params.values() if p.dim() > 1))
    torch.testing.assert_close(dm.vectors[0].norm(), wn, rtol=1e-5, atol=0)


def test_rescaling_invariance_of_filter_normalized_curve(digits):
    X, y = digits
    m = build("mlp", in_dim=64, hidden=[24, 24], out_dim=10, activation="relu", bias=False, seed=3)
    m2 = load_flat(m, flatten_params(m))
    c = 3.0
    with torch.no_grad():
        m2.net[2].weight.mul_(c)  # layer k
        m2.net[4].weight.div_(c)  # layer k+1
    base = dict(span=1.0, resolution=11, dim=1, seed=7)
    f1 = surface(m, (X, y), loss="cross_entropy", directions="filter", **base).loss
    f2 = surface(m2, (X, y), loss="cross_entropy", directions="filter", **base).loss
    np.testing.assert_allclose(f2, f1, rtol=1e-6)
    u1 = surface(m, (X, y), loss="cross_entropy", directions="unnormalized", **base).loss
    u2 = surface(m2, (X, y), loss="cross_entropy", directions="unnormalized", **base).loss
    assert np.abs(u2 - u1).max() / np.abs(u1).max() > 1e-2


def test_orthogonalize():
    m = mlp()
    d = random_directions(m, kind="filter", k=2, seed=0, orthogonalize=True)
    d0 = random_directions(m, kind="filter", k=2, seed=0)
    assert abs(float(d.vectors[0].double() @ d.vectors[1].double())) < 1e-6 * float(d.vectors.norm()) ** 2
    torch.testing.assert_close(d.vectors[1].norm(), d0.vectors[1].norm(), rtol=1e-5, atol=0)


def test_pca_directions_and_projection_of_planar_trajectory():
    g = torch.Generator().manual_seed(0)
    P = 50
    origin = torch.randn(P, generator=g, dtype=torch.float64)
    basis, _ = torch.linalg.qr(torch.randn(P, 2, generator=g, dtype=torch.float64))
    t = torch.linspace(0, 1, 30, dtype=torch.float64)
    coeffs = torch.stack([torch.cos(3 * t) * (1 - t), torch.sin(2 * t) + t], 1)  # (K, 2)
    S = origin + coeffs @ basis.T  # (K, P) in an affine plane
    pca = pca_directions(S, k=2)
    V = pca.directions.vectors
    torch.testing.assert_close(V @ V.T, torch.eye(2, dtype=torch.float64), atol=1e-12, rtol=0)
    assert abs(float(pca.explained_variance_ratio.sum()) - 1) < 1e-12
    proj = project_trajectory(pca, S)
    assert proj.off_plane.max() < 1e-10 * float(S.norm(dim=1).max())
    # projected coordinates reproduce the snapshots
    rec = pca.directions.base + torch.as_tensor(proj.coords) @ V
    torch.testing.assert_close(rec, S, atol=1e-10, rtol=0)
    # a known off-plane offset is measured exactly
    n = torch.randn(P, generator=g, dtype=torch.float64)
    n = n - basis @ (basis.T @ n)
    n = 0.37 * n / n.norm()
    off = project_trajectory(pca, S + n)
    np.testing.assert_allclose(off.off_plane, 0.37, rtol=1e-10)


def test_projection_with_nonorthogonal_directions():
    g = torch.Generator().manual_seed(1)
    m = nn.Linear(6, 3)
    d = explicit_directions(m, [torch.randn(21, generator=g), torch.randn(21, generator=g)])
    c = torch.tensor([[0.3, -0.7], [1.5, 2.0]])
    S = d.base + c @ d.vectors
    p = project_trajectory(d, S)
    np.testing.assert_allclose(p.coords, c.numpy(), atol=1e-5)
    assert p.off_plane.max() < 1e-5


def test_plane_through_three_models_hits_anchors(digits):
    X, y = digits
    a, b, c = mlp(0), mlp(1), mlp(2)
    d = plane_through(a, b, c)
    V = d.vectors.double()
    torch.testing.assert_close(V @ V.T, torch.eye(2, dtype=torch.float64), atol=1e-6, rtol=0)
    anchors = torch.tensor([d.info["anchors"][k] for k in "abc"])
    r = evaluate_points(a, (X, y), "cross_entropy", d.base, d.vectors, anchors)
    lf = get_loss("cross_entropy")
    with torch.no_grad():
        want = [float(lf(mm.eval()(X), y)) for mm in (a, b, c)]
    np.testing.assert_allclose(r.loss.numpy(), want, rtol=1e-4)  # anchors rebuilt through float32 Gram-Schmidt


def test_interpolation_and_barrier(digits):
    X, y = digits
    a, b = mlp(0), mlp(1)
    fa, fb = module_fingerprint(a), module_fingerprint(b)
    alphas = [-0.5, 0.25, 0.5, 1.5]
    it = interpolate(a, b, (X, y), loss="cross_entropy", alphas=alphas)
    assert same_fingerprint(fa, module_fingerprint(a)) and same_fingerprint(fb, module_fingerprint(b))
    assert list(it.alphas) == [-0.5, 0.0, 0.25, 0.5, 1.0, 1.5]
    ta, tb = flatten_params(a), flatten_params(b)
    lf = get_loss("cross_entropy")
    ref = []
    for al in it.alphas:
        mm = load_flat(a, (1 - al) * ta + al * tb)
        with torch.no_grad():
            ref.append(float(lf(mm.eval()(X), y)))
    np.testing.assert_allclose(it.loss, ref, rtol=RTOL32)
    inside = [i for i, al in enumerate(it.alphas) if 0 <= al <= 1]
    want = max(ref[i] for i in inside) - (ref[1] + ref[4]) / 2
    # the barrier formula, exactly, on the evaluated losses
    got = max(it.loss[i] for i in inside) - (it.loss[1] + it.loss[4]) / 2
    assert it.barrier.height == pytest.approx(got, rel=1e-12)
    # against the reference: the barrier is a difference of losses, so its error is bounded by the
    # losses' (rtol RTOL32 each, float32 rounding), not relative to the small barrier itself
    assert it.barrier.height == pytest.approx(want, abs=2 * RTOL32 * max(ref))
    bb = barrier(a, b, (X, y), loss="cross_entropy", resolution=5)
    assert bb.loss_a == pytest.approx(ref[1], rel=RTOL32) and bb.loss_b == pytest.approx(ref[4], rel=RTOL32)
    assert "max" in bb.definition


def test_random_curves_match_individual_curves(digits):
    X, y = digits
    m = mlp()
    st = random_curves(m, (X, y), loss="cross_entropy", n=4, resolution=5, span=0.5, seed=11)
    gen = torch.Generator().manual_seed(11)
    for i in range(4):
        d = random_directions(m, kind="filter", k=1, seed=gen)
        ref, _ = reference_losses(m, X, y, "cross_entropy", d.base, d.vectors, torch.as_tensor(st.alphas)[:, None])
        np.testing.assert_allclose(st.curves[i], ref, rtol=RTOL32)
    np.testing.assert_allclose(st.mean, st.curves.mean(0))
    np.testing.assert_allclose(st.std, st.curves.std(0, ddof=1))
    np.testing.assert_allclose(st.lo, np.quantile(st.curves, 0.1, axis=0))
    np.testing.assert_allclose(st.hi, np.quantile(st.curves, 0.9, axis=0))
    # the curves really differ (different directions), so the band has width away from alpha = 0
    assert st.std[0] > 0 and st.std[len(st.alphas) // 2] < 1e-6


def test_checkpoint_resume_and_progress(tmp_path, digits):
    X, y = digits
    m = mlp()
    full = surface(m, (X, y), loss="cross_entropy", resolution=6)
    ck = tmp_path / "grid.npz"
    calls = []

    class Stop(Exception):
        pass

    def interrupt(done, total):
        calls.append((done, total))
        if done >= 10:
            raise Stop

    with pytest.raises(Stop):
        surface(m, (X, y), loss="cross_entropy", resolution=6, chunk_size=5, checkpoint=ck, progress=interrupt,
                checkpoint_every=0.0)
    assert ck.exists()
    seen = []
    res = surface(m, (X, y), loss="cross_entropy", resolution=6, chunk_size=5, checkpoint=ck,
                  progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (10, 36) and seen[-1] == (36, 36)
    assert res.info["resumed_points"] == 10
    np.testing.assert_allclose(res.loss, full.loss, rtol=RTOL32)
    with pytest.raises(ValueError, match="different grid"):
        surface(m, (X, y), loss="cross_entropy", resolution=5, checkpoint=ck)


def test_oom_halves_chunk(monkeypatch, digits):
    X, y = digits
    m = mlp()
    want = surface(m, (X, y), loss="cross_entropy", resolution=5)
    orig = Evaluator.run

    def flaky(self, coords):
        if len(coords) > 4:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")
        return orig(self, coords)

    monkeypatch.setattr(Evaluator, "run", flaky)
    got = surface(m, (X, y), loss="cross_entropy", resolution=5, chunk_size=25)
    assert got.info["chunk_size"] <= 4
    np.testing.assert_allclose(got.loss, want.loss, rtol=RTOL32)


def test_frozen_params_and_train_mode_untouched(digits):
    X, y = digits
    m = mlp(dropout=0.5)
    m.net[0].weight.requires_grad_(False)
    m.train()
    fp = module_fingerprint(m)
    s = surface(m, (X, y), loss="cross_entropy", resolution=3)
    assert same_fingerprint(fp, module_fingerprint(m))
    assert s.base.shape[0] == sum(p.numel() for p in m.parameters() if p.requires_grad)
    d = random_directions(m, kind="filter", k=2, seed=0)
    ref_l, _ = reference_losses(m, X, y, "cross_entropy", d.base, d.vectors, grid_coords(3))  # eval: dropout off
    np.testing.assert_allclose(s.loss.ravel(), ref_l, rtol=RTOL32)


def test_explicit_directions_dict_equals_flat(digits):
    X, y = digits
    m = mlp()
    d = random_directions(m, kind="filter", k=2, seed=3)
    dicts = [d.spec.unflatten(v) for v in d.vectors]
    s1 = surface(m, (X, y), loss="cross_entropy", directions=list(d.vectors), resolution=3)
    s2 = surface(m, (X, y), loss="cross_entropy", directions=dicts, resolution=3)
    s3 = surface(m, (X, y), loss="cross_entropy", directions="filter", seed=3, resolution=3)
    np.testing.assert_array_equal(s1.loss, s2.loss)
    np.testing.assert_allclose(s1.loss, s3.loss, rtol=RTOL32)
    assert s1.kind == "explicit"


def test_line_through_extrapolates(digits):
    X, y = digits
    a, b = mlp(0), mlp(1)
    s = surface(a, (X, y), loss="cross_entropy", directions=line_through(a, b), span=(-1.0, 2.0), resolution=4)
    assert s.dim == 1 and list(s.axes[0]) == [-1.0, 0.0, 1.0, 2.0]
    it = interpolate(a, b, (X, y), loss="cross_entropy", alphas=[-1.0, 2.0])
    np.testing.assert_allclose(s.loss, it.loss, rtol=RTOL32)


def test_save_load_roundtrip(tmp_path, digits):
    X, y = digits
    s = surface(mlp(), (X, y), loss="cross_entropy", resolution=3)
    s.save(tmp_path / "surf")
    t = Surface.load(tmp_path / "surf.npz")
    np.testing.assert_array_equal(t.loss, s.loss)
    np.testing.assert_array_equal(t.directions, s.directions)
    assert t.settings == json.loads(json.dumps(s.settings)) and t.param_names == s.param_names
    json.dumps(s.to_dict())  # JSON-safe
    p = project_trajectory(t, np.stack([t.base, t.base + 0.5 * t.directions[0]]))
    np.testing.assert_allclose(p.coords, [[0, 0], [0.5, 0]], atol=1e-12)


def test_bf16_states_its_error(digits):
    X, y = digits
    s = surface(mlp(), (X, y), loss="cross_entropy", resolution=3, precision="bf16")
    assert 0 < s.info["precision_max_rel_error"] < 0.1


def test_bad_input_messages(digits):
    X, y = digits
    m = mlp()
    with pytest.raises(ValueError, match="filter"):
        surface(m, (X, y), loss="cross_entropy", directions="filtr")
    with pytest.raises(ValueError, match="flat vector"):
        surface(m, (X, y), loss="cross_entropy", directions=[torch.zeros(5)])
    with pytest.raises(ValueError, match="dim"):
        surface(m, (X, y), loss="cross_entropy", dim=3)
    with pytest.raises(ValueError, match="bn"):
        surface(m, (X, y), loss="cross_entropy", bn="train")
    assert {"filter", "layer", "model", "gaussian", "unnormalized"} <= set(DIRECTIONS.names())


def test_several_trajectories_on_one_surface_and_eigenvector_kind(digits):
    X, y = digits
    m = mlp()
    s = surface(m, (X, y), loss="cross_entropy", resolution=3, directions="filter", orthogonalize=True)
    from losslab.landscape import eigenvector_directions, project_trajectories

    D = torch.as_tensor(s.directions)
    base = torch.as_tensor(s.base)
    trajs = {"sgd": base + torch.tensor([[0.0, 0.0], [0.2, 0.1]], dtype=torch.float64) @ D,
             "adam": base + torch.tensor([[0.0, 0.0], [-0.3, 0.4], [0.5, 0.5]], dtype=torch.float64) @ D}
    out = project_trajectories(s, trajs)
    np.testing.assert_allclose(out["adam"].coords, [[0, 0], [-0.3, 0.4], [0.5, 0.5]], atol=1e-12)
    assert out["sgd"].off_plane.max() < 1e-12 * float(base.norm())
    v = torch.randn(2, D.shape[1], generator=torch.Generator().manual_seed(0))
    e = eigenvector_directions(m, list(v), eigenvalues=[3.0, 1.0])
    assert e.kind == "hessian" and e.info["eigenvalues"] == [3.0, 1.0]
    se = surface(m, (X, y), loss="cross_entropy", directions=e, resolution=3)
    assert se.kind == "hessian"


def test_evaluate_points_shards_concatenate(digits):
    X, y = digits
    m = mlp()
    d = random_directions(m, kind="filter", k=2, seed=0)
    C = grid_coords(5)
    whole = evaluate_points(m, (X, y), "cross_entropy", d.base, d.vectors, C)
    parts = [evaluate_points(m, (X, y), "cross_entropy", d.base, d.vectors, c, chunk_size=3) for c in C.split(9)]
    np.testing.assert_allclose(torch.cat([p.loss for p in parts]).numpy(), whole.loss.numpy(), rtol=RTOL32)
    np.testing.assert_allclose(torch.cat([p.accuracy for p in parts]).numpy(), whole.accuracy.numpy(), atol=1e-6)
    assert whole.n_examples == 300 and whole.strategy == "vmap"


def test_affine_path_with_batchnorm_mlp_in_eval_mode(digits):
    X, y = digits
    m = mlp(batch_norm=True, hidden=[16, 16])
    with torch.no_grad():  # non-trivial running statistics
        m.train()
        m(X[:100] * 1.5 + 0.2)
    m.eval()
    s = surface(m, (X, y), loss="cross_entropy", resolution=3, affine=True)
    assert s.info["affine_first_layer"]
    d = random_directions(m, kind="filter", k=2, seed=0)
    ref_l, _ = reference_losses(m, X, y, "cross_entropy", d.base, d.vectors, grid_coords(3))
    np.testing.assert_allclose(s.loss.ravel(), ref_l, rtol=RTOL32)


# --- the MLP fast path (Linear + elementwise modules; linear in the coordinates at both ends) ---

@pytest.mark.parametrize("net_fn, loss", [
    # two tanh layers: the tanh -> sigmoid fold on a first, a middle (bmm) and into the last layer
    (lambda: build("mlp", in_dim=64, hidden=[24, 16], out_dim=10, activation="tanh", seed=3), "cross_entropy"),
    # relu + dropout (eval: identity), no biases
    (lambda: build("mlp", in_dim=64, hidden=[16, 12], out_dim=10, activation="relu", dropout=0.3, bias=False,
                   seed=4), "cross_entropy"),
    # a Sequential ending in an activation, a tanh with no Linear after it (not folded), hinge loss (unfused)
    (lambda: nn.Sequential(nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 10), nn.Tanh()), "hinge"),
    # a single Linear layer (first = last layer)
    (lambda: nn.Sequential(nn.Linear(64, 10)), "cross_entropy"),
])
def test_mlp_fast_path_equals_reference(digits, net_fn, loss):
    X, y = digits
    torch.manual_seed(5)
    net = net_fn()
    fp = module_fingerprint(net)
    d = random_directions(net, kind="filter", k=2, seed=0, include_biases=True)
    C = grid_coords(4, span=1.5)
    ev = Evaluator(net, (X, y), loss, d.base, d.vectors, chunk_size=5)
    assert ev.fast is not None
    l, a = ev.run_chunked(C)
    ref_l, ref_a = reference_losses(net, X, y, loss, d.base, d.vectors, C)
    np.testing.assert_allclose(l.numpy(), ref_l, rtol=RTOL32)  # float32 rounding of reordered sums
    np.testing.assert_allclose(a.numpy(), ref_a, atol=1e-6)  # counts / 300: exact
    # float64: the algebra (tanh = 2 sigmoid(2x) - 1, the split last layer, fused CE) is exact
    ev64 = Evaluator(net, (X, y), loss, d.base, d.vectors, chunk_size=5, dtype=torch.float64)
    l64, _ = ev64.run_chunked(C)
    ref64, _ = reference_losses(net.double(), X.double(), y, loss, d.base.double(), d.vectors.double(), C)
    net.float()
    np.testing.assert_allclose(l64.numpy(), ref64, rtol=1e-12)
    assert same_fingerprint(fp, module_fingerprint(net))


@pytest.mark.parametrize("bias, loss", [(True, "cross_entropy"), (False, "cross_entropy"), (True, "mse")])
def test_mlp_fast_path_per_point_gemm_branch(digits, monkeypatch, bias, loss):
    """Big layers run one GEMM per point (out= slices of one buffer); forced here on small layers by a zero
    threshold, for class-major logits (fused cross-entropy), (M, N, C) outputs (mse) and no biases."""
    from losslab.landscape import fast_paths

    X, y = digits
    net = build("mlp", in_dim=64, hidden=[24, 16], out_dim=10, activation="tanh", bias=bias, seed=3)
    yy = torch.nn.functional.one_hot(y.long(), 10).float() if loss == "mse" else y
    d = random_directions(net, kind="filter", k=2, seed=0, include_biases=True)
    C = grid_coords(4, span=1.5)
    calls = {"n": 0}
    real_mm, real_addmm = torch.mm, torch.addmm

    def count(f):
        def g(*a, **kw):
            calls["n"] += "out" in kw
            return f(*a, **kw)
        return g
    monkeypatch.setattr(fast_paths, "LOOP_GEMM_MACS", 0)
    monkeypatch.setattr(torch, "mm", count(real_mm))
    monkeypatch.setattr(torch, "addmm", count(real_addmm))
    ev = Evaluator(net, (X, yy), loss, d.base, d.vectors, chunk_size=4)  # 16 points: 4 chunks of 4
    assert ev.fast is not None
    l, a = ev.run_chunked(C)
    assert calls["n"] == 2 * len(C)  # two Linear layers after the first, one GEMM per point each: the branch ran
    monkeypatch.setattr(torch, "mm", real_mm)
    monkeypatch.setattr(torch, "addmm", real_addmm)
    ref_l, ref_a = reference_losses(net, X, yy, loss, d.base, d.vectors, C)
    np.testing.assert_allclose(l.numpy(), ref_l, rtol=RTOL32)  # float32 rounding of reordered sums
    if loss != "mse":
        np.testing.assert_allclose(a.numpy(), ref_a, atol=1e-6)
    ev64 = Evaluator(net, (X, yy), loss, d.base, d.vectors, chunk_size=5, dtype=torch.float64)
    l64, _ = ev64.run_chunked(C)
    ref64, _ = reference_losses(net.double(), X.double(), yy.double() if loss == "mse" else yy, loss,
                                d.base.double(), d.vectors.double(), C)
    np.testing.assert_allclose(l64.numpy(), ref64, rtol=1e-12)  # float64: the per-point split is exact algebra


@pytest.mark.parametrize("bias, loss", [(True, "cross_entropy"), (False, "cross_entropy"), (True, "mse")])
def test_mlp_fast_path_in_tiles_of_examples_matches_a_per_point_loop(digits, monkeypatch, bias, loss):
    """Big layers go point by point and tile by tile of examples through all layers: forced here with tiles of
    70 rows (300 examples: 4 full tiles and a ragged one of 20), class-major logits (cross-entropy) and
    example-major outputs (mse), with and without biases; float32 within RTOL32 of a per-point loop, float64
    within 1e-12 (the same algebra, only rounding differs)."""
    from losslab.landscape import fast_paths

    X, y = digits
    net = build("mlp", in_dim=64, hidden=[24, 16], out_dim=10, activation="tanh", bias=bias, seed=3)
    yy = torch.nn.functional.one_hot(y.long(), 10).float() if loss == "mse" else y
    d = random_directions(net, kind="filter", k=2, seed=0, include_biases=True)
    C = grid_coords(4, span=1.5)
    monkeypatch.setattr(fast_paths, "LOOP_GEMM_MACS", 0)
    monkeypatch.setattr(fast_paths, "TILE_MIN_WIDTH", 0)
    tiles = []
    real = fast_paths.MLPFastPath._forward_tiled

    def spy(self, caug, Z, stacks, n, rows, class_major):
        tiles.append((n, rows, class_major))
        return real(self, caug, Z, stacks, n, rows, class_major)
    monkeypatch.setattr(fast_paths.MLPFastPath, "_forward_tiled", spy)
    for dtype, rtol in ((torch.float32, RTOL32), (torch.float64, 1e-12)):
        monkeypatch.setattr(fast_paths, "TILE_BYTES", 70 * 24 * torch.tensor([], dtype=dtype).element_size())
        tiles.clear()
        ev = Evaluator(net, (X, yy), loss, d.base, d.vectors, chunk_size=5, dtype=dtype)
        l, a = ev.run_chunked(C)
        assert tiles and all(t == (X.shape[0], 70, loss == "cross_entropy") for t in tiles), tiles
        ref_l, ref_a = reference_losses(net.to(dtype), X.to(dtype), yy.to(dtype) if loss == "mse" else yy, loss,
                                        d.base.to(dtype), d.vectors.to(dtype), C)
        net.float()
        np.testing.assert_allclose(l.numpy(), ref_l, rtol=rtol)
        if loss != "mse":
            np.testing.assert_allclose(a.numpy(), ref_a, atol=1e-6)


def test_mlp_fast_path_regression_and_generic_agree(digits):
    X, _ = digits
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 16), nn.SiLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))
    y = torch.randn(X.shape[0], 3)
    d = random_directions(net, kind="layer", k=2, seed=1)
    C = grid_coords(3)
    fast = Evaluator(net, (X, y), "mse", d.base, d.vectors)
    generic = Evaluator(net, (X, y), "mse", d.base, d.vectors, affine=False)
    assert fast.fast is not None and generic.fast is None
    lf, af = fast.run_chunked(C)
    lg, _ = generic.run_chunked(C)
    ref, _ = reference_losses(net, X, y, "mse", d.base, d.vectors, C)
    assert af is None
    np.testing.assert_allclose(lf.numpy(), ref, rtol=RTOL32)
    np.testing.assert_allclose(lg.numpy(), ref, rtol=RTOL32)


def test_fused_cross_entropy_accuracy_with_tied_logits(digits):
    """All logits exactly equal (zero last layer, zero direction there): argmax is the first
    class, so accuracy = fraction of label 0; the fused loss is log(10)."""
    X, y = digits
    net = build("mlp", in_dim=64, hidden=[8], out_dim=10, activation="tanh", seed=0)
    with torch.no_grad():
        net.net[-1].weight.zero_()
        net.net[-1].bias.zero_()
    d = random_directions(net, kind="filter", k=2, seed=0)  # filter: zero rows stay zero
    s = surface(net, (X, y), loss="cross_entropy", resolution=3, directions=d)
    np.testing.assert_allclose(s.accuracy, float((y == 0).float().mean()), atol=1e-7)
    np.testing.assert_allclose(s.loss, np.log(10.0), rtol=1e-6)


def test_fast_path_not_used_for_other_modules(digits):
    X, y = digits
    m = mlp(batch_norm=True, hidden=[8])
    d = random_directions(m, kind="filter", k=2, seed=0)
    assert Evaluator(m, (X, y), "cross_entropy", d.base, d.vectors).fast is None  # BatchNorm: first-layer path
    assert Evaluator(mlp(), (X, y), "cross_entropy", random_directions(mlp(), kind="filter", k=2, seed=0).base,
                     random_directions(mlp(), kind="filter", k=2, seed=0).vectors, strategy="loop").fast is None


class _SmallCNN(nn.Module):
    def __init__(self, mix: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 10)
        self.mix = mix

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x.reshape(-1, 1, 8, 8)))).mean(dim=(2, 3))
        if self.mix:  # couples the examples of a batch: tiles of examples give other outputs
            h = h - h.mean(0, keepdim=True)
        return self.head(h)


@pytest.mark.parametrize("mix", [False, True])
def test_the_point_loop_runs_tiles_of_examples_only_when_they_give_the_same_outputs(digits, monkeypatch, mix):
    """The per-point loop tries tiles of examples on its first point; a fake clock makes the tiles look
    faster, so the only thing that can keep the whole batch is the output check: a model that mixes the
    examples of a batch keeps it (and its surface is the whole-batch loop's), one that does not runs in
    tiles with the same numbers (float32, RTOL32 against a plain per-point loop)."""
    import itertools

    from losslab.landscape import point_loop

    X, y = digits
    torch.manual_seed(0)
    net = _SmallCNN(mix)
    with torch.no_grad():
        net.train()
        net(X)  # running statistics that are not the defaults
    net.eval()
    d = random_directions(net, kind="filter", k=2, seed=0)
    C = grid_coords(3)
    clock = itertools.count()
    ticks = iter([0.0, 10.0, 20.0, 21.0])  # whole: 10 s, tiles: 1 s
    monkeypatch.setattr(point_loop.time, "perf_counter", lambda: next(ticks, float(next(clock))))
    ev = Evaluator(net, (X, y), "cross_entropy", d.base, d.vectors, strategy="loop")
    # tiles of 300 / 8 examples' worth of module outputs: 8 tiles (tensor_split: 37-38 examples each)
    monkeypatch.setattr(point_loop, "LOOP_TILE_BYTES", X.shape[0] * ev._activation_bytes_per_example() / 8)
    l, a = ev.run_chunked(C)
    assert ev._loop.tiles == {X.shape[0]: 1 if mix else 8}
    ref_l, ref_a = reference_losses(net, X, y, "cross_entropy", d.base, d.vectors, C)
    np.testing.assert_allclose(l.numpy(), ref_l, rtol=RTOL32)
    np.testing.assert_allclose(a.numpy(), ref_a, atol=1e-6)


def test_the_point_loop_grows_its_chunks_and_gives_the_same_numbers(digits, monkeypatch):
    """Once the per-point loop runs, chunks grow to LOOP_CHUNK_BYTES of stacked outputs (one point's activations
    are all it holds at a time); a caller's chunk_size is kept. The losses are the per-point reference's
    (float32, RTOL32) either way, and the labels of the kept batch are validated on its first chunk only."""
    from losslab.landscape import evaluate

    X, y = digits
    torch.manual_seed(0)
    net = _SmallCNN().eval()
    d = random_directions(net, kind="filter", k=2, seed=0)
    C = grid_coords(9)  # 81 points
    checks = []
    orig = evaluate.Evaluator._fused_ce_sums

    def spy(self, out, yy, cdim, check=True):
        checks.append(check)
        return orig(self, out, yy, cdim, check)

    monkeypatch.setattr(evaluate.Evaluator, "_fused_ce_sums", spy)
    ev = Evaluator(net, (X, y), "cross_entropy", d.base, d.vectors, strategy="loop", memory_budget=2 ** 26)
    planned = ev.plan_chunks(len(C))
    l, a = ev.run_chunked(C)
    out_bytes = X.shape[0] * 10 * 4
    assert ev._loop.out_bytes == out_bytes
    want = min(evaluate.LOOP_MAX_CHUNK, evaluate.LOOP_CHUNK_BYTES // out_bytes)
    assert planned < want and ev.chunk_size == want
    assert checks[0] is True and not any(checks[1:]) and len(checks) < len(C) / planned
    ref_l, ref_a = reference_losses(net, X, y, "cross_entropy", d.base, d.vectors, C)
    np.testing.assert_allclose(l.numpy(), ref_l, rtol=RTOL32)
    np.testing.assert_allclose(a.numpy(), ref_a, atol=1e-6)
    fixed = Evaluator(net, (X, y), "cross_entropy", d.base, d.vectors, strategy="loop", chunk_size=3)
    l3, _ = fixed.run_chunked(C)
    assert fixed.chunk_size == 3
    np.testing.assert_allclose(l3.numpy(), l.numpy(), rtol=1e-6)


def test_labels_of_a_kept_batch_that_fail_the_check_are_checked_again(digits):
    """The label check is skipped only after it passed: a bad label still fails on every call."""
    X, y = digits
    net = _SmallCNN().eval()
    d = random_directions(net, kind="filter", k=2, seed=0)
    bad = y.clone()
    bad[5] = 10  # 10 classes: label 10 is out of range
    ev = Evaluator(net, (X, bad), "cross_entropy", d.base, d.vectors, strategy="loop")
    for _ in range(2):
        with pytest.raises(ValueError, match="label|class|range"):
            ev.run_chunked(grid_coords(3))
