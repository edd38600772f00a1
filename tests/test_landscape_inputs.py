"""Hostile inputs to surface() and its helpers: each gets a clear error, a recorded status, or the
right numbers (resume, interrupt) -- never a traceback from deep inside torch/numpy or a silent
wrong result."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from losslab.landscape import Surface, pca_directions, surface
from losslab.landscape.evaluate import Evaluator

torch.manual_seed(0)
X = torch.randn(40, 5)
Y = torch.randint(0, 3, (40,))
P = 5 * 8 + 8 + 8 * 3 + 3


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))


def S(m=None, data=None, **kw):
    kw.setdefault("resolution", 3)
    return surface(m if m is not None else mlp(), data if data is not None else (X, Y), loss="cross_entropy", **kw)


class Stop(Exception):
    pass


def stop_after(n, exc=Stop):
    def prog(done, total):
        if done >= n:
            raise exc()
    return prog


# -- 1. streamed data are part of the checkpoint's identity ------------------------------------------

def test_resume_streamed_data_checks_the_data(tmp_path):
    m = mlp()
    full = S(m, resolution=5)
    shuffled = DataLoader(TensorDataset(X, Y), batch_size=7, shuffle=True, generator=torch.Generator().manual_seed(1))
    ck = tmp_path / "grid.npz"
    with pytest.raises(Stop):
        S(m, shuffled, resolution=5, chunk_size=4, checkpoint=ck, checkpoint_every=0, progress=stop_after(8))
    other = DataLoader(TensorDataset(X * 3, Y), batch_size=7)
    with pytest.raises(ValueError, match="different grid"):
        S(m, other, resolution=5, checkpoint=ck)
    swapped = DataLoader(TensorDataset(X, Y.roll(1)), batch_size=7)  # same X and y values, other pairing
    with pytest.raises(ValueError, match="different grid"):
        S(m, swapped, resolution=5, checkpoint=ck)
    res = S(m, shuffled, resolution=5, chunk_size=4, checkpoint=ck)  # reshuffled on every pass: still resumes
    assert res.info["resumed_points"] == 8
    np.testing.assert_allclose(res.loss, full.loss, rtol=1e-5)


# -- 2. NaN and inf ------------------------------------------------------------------------------

def test_nan_in_streamed_batches_is_refused():
    Xn = X.clone()
    Xn[20, 1] = float("nan")  # not in the first batch
    with pytest.raises(ValueError, match="batch 2.*NaN"):
        S(data=DataLoader(TensorDataset(Xn, Y), batch_size=8))


def test_nan_parameter_direction_and_span_are_refused():
    m = mlp()
    with torch.no_grad():
        m[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="base point.*NaN"):
        S(m)
    with pytest.raises(ValueError, match="direction 1 has 75 NaN"):
        S(directions=[torch.full((P,), float("nan")), torch.randn(P)])
    for span in (float("inf"), float("nan"), (0.0, float("inf")), None):
        with pytest.raises(ValueError, match="span"):
            S(span=span)


class SqrtNet(nn.Module):  # NaN loss where the bias goes below 0.3: part of the grid only
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.l = nn.Linear(5, 3)
        with torch.no_grad():
            self.l.bias.fill_(0.5)

    def forward(self, x):
        return torch.sqrt(self.l.bias - 0.3 + 0 * self.l(x))


def test_partly_nonfinite_surface_is_counted_and_warned():
    with pytest.warns(RuntimeWarning, match="grid points have a NaN/inf loss"):
        s = surface(SqrtNet(), (X, Y), loss="cross_entropy", resolution=5, include_biases=True, directions="gaussian")
    bad = int((~np.isfinite(s.loss)).sum())
    assert 0 < bad < 25 and s.info["nonfinite_points"] == bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert S().info["nonfinite_points"] == 0  # no warning when all finite


def test_min_and_to_dict_of_an_all_nan_surface():
    s = S()
    nan = Surface(s.axes, np.full_like(s.loss, np.nan), None, s.base, s.directions, s.kind, s.param_names,
                  s.param_shapes, s.settings, s.info)
    assert nan.min() == {"coords": None, "loss": None}
    assert nan.to_dict()["min"]["loss"] is None


def test_pca_of_nan_snapshots():
    K = torch.randn(5, 20)
    with pytest.raises(ValueError, match=r"snapshots \[5\].*NaN"):
        pca_directions(torch.cat([K, torch.full((1, 20), float("nan"))]), k=2)


# -- 3. device and grid size ---------------------------------------------------------------------

def test_bad_device_is_a_value_error():
    with pytest.raises(ValueError, match="device.*available|device must be one of"):
        S(device="tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available.*available: cpu"):
            S(device="cuda")


def test_huge_grid_refused_up_front():
    with pytest.raises(ValueError, match=r"10,000,000,000 points \(100000 x 100000\).*GiB"):
        S(resolution=100000)


# -- 4. errors from the public boundary ----------------------------------------------------------

class Tup(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(5, 3)

    def forward(self, x):
        return self.l(x), x


@pytest.mark.parametrize("kw, match", [
    (dict(m=Tup()), r"returned a tuple of length \d.*not a tensor.*output=0"),
    (dict(data=(torch.empty(0, 5), torch.empty(0, dtype=torch.long))), "no examples"),
    (dict(data=[]), "no batches"),
    (dict(batch_size=0), "batch_size must be an int >= 1"),
    (dict(batch_size=-1), "batch_size must be an int >= 1"),
    (dict(dtype="float8"), "dtype must be"),
    (dict(resolution=2.5), "resolution must be"),
    (dict(resolution=None), "resolution must be"),
    (dict(resolution=True), "resolution must be"),
    (dict(dim=2.0), "dim must be 1"),
    (dict(data=(X.round().long(), Y)), "inputs X are integers.*X.float"),
    (dict(data=(X, nn.functional.one_hot(Y, 3).float())), "class-index labels.*one-hot"),
    (dict(m=nn.Identity(), data=(torch.randn(10, 3), torch.randint(0, 3, (10,)))), "the model has no parameters"),
])
def test_bad_inputs_get_clear_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        S(**kw)


def test_exhausted_generator():
    gen = ((a, b) for a, b in zip(X.split(10), Y.split(10)))
    first = S(data=gen)
    np.testing.assert_allclose(first.loss, S().loss, rtol=1e-5)
    with pytest.raises(ValueError, match="no batches.*read once"):
        S(data=gen)


def test_dtype_by_name():
    a = S(dtype="float64")
    b = S(dtype=torch.float64)
    assert a.settings["dtype"] == "float64"
    np.testing.assert_array_equal(a.loss, b.loss)


def test_corrupt_checkpoints(tmp_path):
    good = tmp_path / "ok.npz"
    with pytest.raises(Stop):
        S(resolution=5, chunk_size=4, checkpoint=good, checkpoint_every=0, progress=stop_after(8))
    raw = good.read_bytes()
    (tmp_path / "half.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "junk.npz").write_bytes(b"garbage")
    for name in ("half.npz", "junk.npz"):
        with pytest.raises(ValueError, match=f"corrupt checkpoint .*{name}.*delete it or choose another path"):
            S(resolution=5, checkpoint=tmp_path / name)
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        S(checkpoint=tmp_path / "dir.npz")


def test_corrupt_saved_surface(tmp_path):
    s = S()
    s.save(tmp_path / "s")
    (tmp_path / "s.json").write_text("{bad")
    with pytest.raises(ValueError, match="s.json is corrupt"):
        Surface.load(tmp_path / "s")
    s.save(tmp_path / "s")
    (tmp_path / "s.npz").write_bytes(b"xx")
    with pytest.raises(ValueError, match="s.npz is corrupt"):
        Surface.load(tmp_path / "s")


# -- 5. resolution 1 is the model itself ---------------------------------------------------------

def test_resolution_one_is_the_midpoint():
    m = mlp()
    s = S(m, resolution=1)
    assert [list(a) for a in s.axes] == [[0.0], [0.0]]
    with torch.no_grad():
        want = float(nn.functional.cross_entropy(m(X), Y))
    np.testing.assert_allclose(s.loss.ravel(), [want], rtol=1e-6)
    assert list(S(m, resolution=(1, 3), span=(0.0, 2.0)).axes[0]) == [1.0]


# -- 6. an interrupt keeps the finished points ---------------------------------------------------

def test_keyboard_interrupt_writes_the_checkpoint(tmp_path):
    ck = tmp_path / "k.npz"
    with pytest.raises(KeyboardInterrupt):
        S(resolution=7, chunk_size=4, checkpoint=ck, checkpoint_every=100, progress=stop_after(12, KeyboardInterrupt))
    with np.load(ck) as z:
        assert int(z["done"].sum()) == 12
    res = S(resolution=7, chunk_size=4, checkpoint=ck)
    assert res.info["resumed_points"] == 12
    np.testing.assert_allclose(res.loss, S(resolution=7).loss, rtol=1e-5)


# -- 7. contradictory or meaningless settings ----------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    (dict(directions=[torch.randn(P)], dim=2), "dim=2 but 1 direction given"),
    (dict(directions=[torch.randn(P), torch.randn(P)], dim=1), "dim=1 but 2 directions given"),
    (dict(directions=[torch.zeros(P), torch.randn(P)]), "direction 1 is all zeros"),
    (dict(chunk_size=0), "chunk_size must be an int >= 1"),
    (dict(chunk_size=-1), "chunk_size must be an int >= 1"),
    (dict(chunk_size=2.5), "chunk_size must be an int >= 1"),
    (dict(precision="bf16", dtype=torch.float64), "needs dtype float32"),
])
def test_contradictions_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        S(**kw)


@pytest.mark.parametrize("seed", [1.5, None, True])
def test_bad_seed(seed):
    with pytest.raises(TypeError, match="seed must be an int"):
        S(seed=seed)


def test_dim_follows_given_directions():
    assert S(directions=[torch.randn(P)]).dim == 1
    assert S(directions=[torch.randn(P)], dim=1).dim == 1


# -- 8. numpy arrays -----------------------------------------------------------------------------

def test_numpy_arrays_are_accepted():
    a = S(data=(X.numpy(), Y.numpy()))
    np.testing.assert_array_equal(a.loss, S().loss)
    b = S(data=[(X.numpy()[:20], Y.numpy()[:20].astype(np.int32)), (X.numpy()[20:], Y.numpy()[20:].astype(np.int32))])
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-5)


def test_evaluator_validates_its_arguments():
    m = mlp()
    base = torch.cat([p.detach().reshape(-1) for p in m.parameters()])
    with pytest.raises(ValueError, match="direction 1 has"):
        Evaluator(m, (X, Y), "cross_entropy", base, torch.full((1, P), float("inf")))
    with pytest.raises(ValueError, match="memory_budget"):
        Evaluator(m, (X, Y), "cross_entropy", base, torch.randn(1, P), memory_budget=0)


def test_bf16_with_a_generator_reuses_the_batches():
    gen = ((a, b) for a, b in zip(X.split(10), Y.split(10)))
    s = S(data=gen, precision="bf16")
    assert 0 <= s.info["precision_max_rel_error"] < 0.1
