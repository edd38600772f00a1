"""Datasets, splits, preprocessing and the CSV/NPZ loaders (including every bad-file case)."""
import numpy as np
import pytest
import torch

from losslab.data import DATASETS, Data, Splits, kfold, load, load_csv, load_npz, split
from losslab.data.files import DataFileError, DataFileNotFoundError
from losslab.data.splits import preprocess
from losslab.registry import UnknownNameError



# name -> (options that keep it small, task, in_dim, out_dim, n_classes, example shape of X)
BUILTIN = {
    "seven_points": ({}, "regression", 1, 1, None, (1,)),
    "linear": ({"n": 50, "dim": 3}, "regression", 3, 1, None, (3,)),
    "polynomial": ({}, "regression", 1, 1, None, (1,)),
    "moons": ({"n": 60}, "classification", 2, 2, 2, (2,)),
    "spirals": ({"n": 60, "classes": 3}, "classification", 2, 3, 3, (2,)),
    "digits": ({"n": 200}, "classification", 64, 10, 10, (64,)),
    "adding": ({"n": 50, "length": 7}, "regression", 2, 1, None, (7, 2)),
}


def _all(s: Splits):
    return [d for d in (s.train, s.val, s.test) if d is not None]


def test_builtin_table_covers_registry():
    # csv/npz load user files (tested below on files the tests write); mnist1d has its own tests (tests/test_mnist1d.py)
    assert set(BUILTIN) | {"csv", "npz", "mnist1d"} == set(DATASETS.names())


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_loads_with_shapes_and_task(name):
    opts, task, in_dim, out_dim, n_classes, xshape = BUILTIN[name]
    s = load(name, seed=0, **opts)
    assert isinstance(s, Splits)
    assert (s.task, s.in_dim, s.out_dim, s.n_classes) == (task, in_dim, out_dim, n_classes)
    for d in _all(s):
        assert d.X.shape[1:] == xshape and d.X.dtype == torch.float32
        assert d.y.shape[0] == d.X.shape[0]
        if task == "classification":
            assert d.y.dtype == torch.long and d.y.dim() == 1
            assert int(d.y.min()) >= 0 and int(d.y.max()) < n_classes
        else:
            assert d.y.shape[1:] == (out_dim,) and d.y.is_floating_point()
        assert torch.isfinite(d.X).all()
    # same seed, same data; a different seed changes a generated/shuffled dataset
    t = load(name, seed=0, **opts)
    for a, b in zip(_all(s), _all(t)):
        assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)
    if name != "seven_points":  # seven_points has no split and no randomness
        u = load(name, seed=1, **opts)
        assert not torch.equal(s.train.X, u.train.X)


def test_builtin_specifics():
    s = load("seven_points")
    assert s.train.n == 7 and s.val is None and s.test is None
    a = load("adding", n=200, length=10)
    X, y = a.train.X, a.train.y
    assert torch.all(X[:, :, 1].sum(dim=1) == 2)  # exactly two markers
    assert torch.all(X[:, :5, 1].sum(dim=1) == 1) and torch.all(X[:, 5:, 1].sum(dim=1) == 1)
    assert torch.allclose(y[:, 0], (X[:, :, 0] * X[:, :, 1]).sum(dim=1))
    lin = load("linear", n=100, dim=3, noise=0.0, val_fraction=0, test_fraction=0)
    w, b = torch.tensor(lin.meta["w"]), lin.meta["b"]
    assert torch.allclose(lin.train.X @ w + b, lin.train.y[:, 0], atol=1e-5)  # noise=0: exact plane


def test_unknown_dataset_lists_names():
    with pytest.raises(UnknownNameError, match="moons"):
        load("moon")
    with pytest.raises(TypeError, match="valid options"):
        load("moons", bogus=1)


def _as_rows(d: Data):
    return {tuple(r) for r in torch.cat([d.X.reshape(d.n, -1), d.y.reshape(d.n, -1).float()], 1).tolist()}


@pytest.mark.parametrize("vf,tf", [(0.2, 0.2), (0.3, 0.0), (0.0, 0.25), (0.1, 0.1)])
def test_split_disjoint_and_covering(vf, tf):
    n = 37
    d = Data(torch.arange(n, dtype=torch.float32).unsqueeze(1), torch.arange(n))
    tr, va, te = split(d, val_fraction=vf, test_fraction=tf, seed=5)
    ids = [set(x.y.tolist()) if x is not None else set() for x in (tr, va, te)]
    assert ids[0].isdisjoint(ids[1]) and ids[0].isdisjoint(ids[2]) and ids[1].isdisjoint(ids[2])
    assert ids[0] | ids[1] | ids[2] == set(range(n))
    assert len(ids[1]) == round(n * vf) and len(ids[2]) == round(n * tf)
    assert (va is None) == (vf == 0) and (te is None) == (tf == 0)
    # X and y stay paired
    for x in (tr, va, te):
        if x is not None:
            assert torch.equal(x.X[:, 0].long(), x.y)
    again = split(d, val_fraction=vf, test_fraction=tf, seed=5)
    assert torch.equal(again[0].y, tr.y)


def test_split_bad_fractions():
    d = Data(torch.zeros(10, 1), torch.zeros(10))
    with pytest.raises(ValueError, match="< 1"):
        split(d, val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ValueError, match="val_fraction"):
        split(d, val_fraction=-0.1)


@pytest.mark.parametrize("n,k", [(10, 3), (23, 5), (5, 5)])
def test_kfold_each_index_once_in_val(n, k):
    seen = []
    for tr, va in kfold(n, k, seed=2):
        assert set(tr.tolist()).isdisjoint(va.tolist())
        assert set(tr.tolist()) | set(va.tolist()) == set(range(n))
        seen.extend(va.tolist())
    assert sorted(seen) == list(range(n))  # every index in exactly one val fold
    folds = [len(va) for _, va in kfold(n, k, seed=2)]
    assert max(folds) - min(folds) <= 1 and len(folds) == k
    with pytest.raises(ValueError, match="k-fold"):
        list(kfold(n, 1))


@pytest.mark.parametrize("how", ["standardize", "minmax"])
def test_preprocessing_fitted_on_train_only(how):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(100, 3, generator=g) * torch.tensor([1.0, 5.0, 0.1]) + torch.tensor([2.0, -1.0, 7.0])
    tr, va, te = split(Data(X, torch.zeros(100)), seed=0)
    s = Splits(tr, va, te)
    p = preprocess(s, how)
    # reference: statistics of the raw training split only, applied to every split
    if how == "standardize":
        mu, sd = tr.X.mean(0), tr.X.std(0, unbiased=False)
        ref = lambda A: (A - mu) / sd  # noqa: E731
        assert torch.allclose(p.train.X.mean(0), torch.zeros(3), atol=1e-5)
        assert torch.allclose(p.train.X.std(0, unbiased=False), torch.ones(3), atol=1e-5)
    else:
        lo, hi = tr.X.amin(0), tr.X.amax(0)
        ref = lambda A: (A - lo) / (hi - lo)  # noqa: E731
        assert torch.allclose(p.train.X.amin(0), torch.zeros(3)) and torch.allclose(p.train.X.amax(0), torch.ones(3))
    for raw, out in ((tr, p.train), (va, p.val), (te, p.test)):
        assert torch.allclose(out.X, ref(raw.X), atol=1e-5)
    # val/test are NOT normalized by their own statistics (that would leak): check they differ
    own = (va.X - va.X.mean(0)) / va.X.std(0, unbiased=False) if how == "standardize" else \
        (va.X - va.X.amin(0)) / (va.X.amax(0) - va.X.amin(0))
    assert not torch.allclose(p.val.X, own, atol=1e-3)
    assert torch.equal(s.train.X, tr.X)  # the input splits are not modified
    assert p.meta["preprocessing"] == how


# ----------------------------------------------------------------------------- CSV / NPZ files

def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_header_and_named_target(tmp_path):
    rows = [(i * 0.5, i * i - 3.0, (i % 3) * 1.25 + 0.1) for i in range(10)]
    text = "x1,price,x2\n" + "".join(f"{a},{c},{b}\n" for a, b, c in rows)
    p = _write(tmp_path, "houses.csv", text)
    s = load_csv(p, target="price", val_fraction=0.2, test_fraction=0.1, seed=3)
    assert s.task == "regression" and s.in_dim == 2 and s.out_dim == 1 and s.n_classes is None
    assert s.name == "houses" and s.meta["columns"] == ["x1", "x2"] and s.meta["target"] == "price"
    assert (s.train.n, s.val.n, s.test.n) == (7, 2, 1)
    # every row comes back exactly once, with the right column as target
    got = set()
    for d in _all(s):
        assert d.y.shape == (d.n, 1) and d.X.dtype == torch.float32
        got |= {(round(a, 5), round(b, 5), round(c, 5)) for (a, b), (c,) in zip(d.X.tolist(), d.y.tolist())}
    assert got == {(round(a, 5), round(b, 5), round(c, 5)) for a, b, c in rows}
    # the same split as the generic splitter with the same seed
    s2 = load_csv(p, target=1, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert torch.equal(s.train.X, s2.train.X) and torch.equal(s.test.y, s2.test.y)


def test_csv_no_header_default_last_column_and_delimiter(tmp_path):
    p = _write(tmp_path, "d.tsv", "1\t2\t0.5\n3\t4\t1.5\n5\t6\t2.5\n\n7\t8\t3.5\n9\t1\t4.5\n")
    s = load_csv(p, delimiter="\t", val_fraction=0, test_fraction=0)
    assert s.meta["header"] is False and s.train.n == 5  # blank line skipped
    assert torch.equal(s.train.X, torch.tensor([[1., 2.], [3., 4.], [5., 6.], [7., 8.], [9., 1.]]))
    assert torch.equal(s.train.y[:, 0], torch.tensor([0.5, 1.5, 2.5, 3.5, 4.5]))
    assert load_csv(p, delimiter="\t", header=False, val_fraction=0, test_fraction=0).train.n == 5


def test_csv_classification_labels(tmp_path):
    p = _write(tmp_path, "c.csv", "a,b,kind\n1,2,dog\n3,4,cat\n5,6,emu\n7,8,cat\n9,0,dog\n")
    s = load_csv(p, target="kind", val_fraction=0, test_fraction=0)
    assert s.task == "classification" and s.n_classes == 3 and s.out_dim == 3
    assert s.meta["classes"] == ["cat", "dog", "emu"]
    assert s.train.y.dtype == torch.long and s.train.y.tolist() == [1, 0, 2, 0, 1]
    # no header and text labels: the first row is data, not a header
    h = _write(tmp_path, "h.csv", "1,2,dog\n3,4,cat\n5,6,dog\n")
    s = load_csv(h, val_fraction=0, test_fraction=0)
    assert s.meta["header"] is False and s.train.n == 3 and s.train.y.tolist() == [1, 0, 1]
    # integer labels (few distinct) are classification in auto mode; labels map to 0..C-1
    q = _write(tmp_path, "i.csv", "1.0,5\n2.0,7\n3.0,5\n4.0,9\n")
    s = load_csv(q, val_fraction=0, test_fraction=0)
    assert s.task == "classification" and s.meta["classes"] == [5, 7, 9] and s.train.y.tolist() == [0, 1, 0, 2]
    assert all(type(c) is int for c in s.meta["classes"])  # JSON-friendly original labels
    # ... unless the task is given
    r = load_csv(q, task="regression", val_fraction=0, test_fraction=0)
    assert r.task == "regression" and r.train.y[:, 0].tolist() == [5, 7, 5, 9]
    with pytest.raises(DataFileError, match="classification"):
        load_csv(p, target="kind", task="regression")
    with pytest.raises(DataFileError, match="integer or text labels"):
        load_csv(_write(tmp_path, "f.csv", "1,0.5\n2,1.5\n3,2.5\n"), task="classification")


def test_csv_preprocess_uses_train_stats(tmp_path):
    rng = np.random.default_rng(0)
    A = rng.normal(3.0, 2.0, size=(40, 2))
    p = _write(tmp_path, "p.csv", "".join(f"{a},{b},{a + b}\n" for a, b in A))
    raw = load_csv(p, seed=1)
    s = load_csv(p, seed=1, preprocess="standardize")
    mu, sd = raw.train.X.mean(0), raw.train.X.std(0, unbiased=False)
    assert torch.allclose(s.test.X, (raw.test.X - mu) / sd, atol=1e-5)
    assert torch.allclose(s.val.X, (raw.val.X - mu) / sd, atol=1e-5)
    assert torch.equal(s.train.y, raw.train.y)  # targets untouched
    with pytest.raises(UnknownNameError, match="minmax"):
        load_csv(p, preprocess="zscore")


def test_csv_via_registry_load(tmp_path):
    p = _write(tmp_path, "r.csv", "u,v,w\n1,2,3\n4,5,6\n7,8,9\n1,1,1\n2,2,2\n")
    s = load("csv", path=str(p), target="v", val_fraction=0.2, test_fraction=0.0, seed=4)
    ref = load_csv(p, target="v", val_fraction=0.2, test_fraction=0.0, seed=4)
    assert torch.equal(s.train.X, ref.train.X) and s.meta["target"] == "v"
    with pytest.raises(ValueError, match="path="):
        load("csv")
    with pytest.raises(TypeError, match="valid options"):
        load("csv", path=str(p), colour="red")


# every bad-CSV case: (file text or None for a missing file, options, phrases the message must contain)
BAD_CSV = {
    "missing": (None, {}, ["no such file"]),
    "empty": ("", {}, ["empty"]),
    "blank_only": ("\n\n  \n", {}, ["empty"]),
    "header_only": ("a,b,c\n", {}, ["no data rows"]),
    "ragged": ("a,b,c\n1,2,3\n4,5\n6,7,8\n", {}, ["line 3", "2 values", "expected 3"]),
    "non_numeric": ("a,b,c\n1,2,3\n4,x5,6\n", {}, ["line 3", "column 2", "'b'", "'x5'", "expected a number"]),
    "empty_cell": ("a,b,c\n1,,3\n", {}, ["line 2", "column 2", "empty cell"]),
    "nan_feature": ("a,b,c\n1,2,3\nnan,5,6\n", {}, ["line 3", "column 1", "'a'", "not finite"]),
    "inf_target": ("a,b,c\n1,2,3\n4,5,inf\n", {}, ["line 3", "column 3", "'c'", "not finite"]),
    "no_target_name": ("a,b,c\n1,2,3\n", {"target": "price"}, ["'price'", "does not exist", "'a'", "'b'", "'c'"]),
    "target_index": ("1,2,3\n4,5,6\n", {"target": 5}, ["index 5", "out of range", "3 columns"]),
    "one_column": ("a\n1\n2\n", {}, ["1 column", "delimiter"]),
    "text_target_regression": ("a,b\n1,x\n2,y\n", {"task": "regression"}, ["line 2", "needs a number", "'x'"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_csv_bad_files(tmp_path, case):
    text, opts, phrases = BAD_CSV[case]
    p = tmp_path / f"{case}.csv"
    if text is not None:
        p.write_text(text)
    with pytest.raises(DataFileError) as e:
        load_csv(p, **opts)
    msg = str(e.value)
    assert str(p) in msg  # the file is named
    for ph in phrases:
        assert ph in msg, (ph, msg)
    if case == "missing":
        assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, DataFileNotFoundError)
    assert isinstance(e.value, ValueError)


def test_npz_happy_paths(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1
    p = tmp_path / "reg.npz"
    np.savez(p, X=X, y=y)
    s = load_npz(p, seed=2)
    assert s.task == "regression" and s.in_dim == 4 and s.out_dim == 1
    assert (s.train.n, s.val.n, s.test.n) == (18, 6, 6)
    allX = torch.cat([d.X for d in _all(s)])
    assert torch.allclose(allX.double().sort(0).values, torch.tensor(X).sort(0).values, atol=1e-6)
    # custom keys, string labels, sequences (N, T, F)
    q = tmp_path / "cls.npz"
    np.savez(q, feats=rng.normal(size=(12, 5, 3)), labels=np.array(["b", "a", "c"] * 4), extra=np.zeros(2))
    c = load_npz(q, x_key="feats", y_key="labels", val_fraction=0, test_fraction=0)
    assert c.task == "classification" and c.n_classes == 3 and c.in_dim == 3 and c.train.X.shape == (12, 5, 3)
    assert c.meta["classes"] == ["a", "b", "c"] and c.train.y[:3].tolist() == [1, 0, 2]
    # multi-output regression and 1-D X
    r = tmp_path / "multi.npz"
    np.savez(r, X=np.linspace(0, 1, 10), y=rng.normal(size=(10, 2)))
    m = load_npz(r, val_fraction=0, test_fraction=0)
    assert m.task == "regression" and m.out_dim == 2 and m.train.X.shape == (10, 1) and m.train.y.shape == (10, 2)
    # through the registry
    t = load("npz", path=str(p), seed=2)
    assert torch.equal(t.train.X, s.train.X)


def _npz(tmp_path, name, **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def test_npz_bad_files(tmp_path):
    cases = []
    cases.append((tmp_path / "nope.npz", {}, ["no such file"]))
    (tmp_path / "empty.npz").write_bytes(b"")
    cases.append((tmp_path / "empty.npz", {}, ["empty"]))
    (tmp_path / "junk.npz").write_text("not a zip")
    cases.append((tmp_path / "junk.npz", {}, ["not a readable numpy .npz"]))
    cases.append((_npz(tmp_path, "keys.npz", inputs=np.zeros((3, 2)), targets=np.zeros(3)), {},
                  ["lacks array(s) 'X', 'y'", "'inputs'", "'targets'", "x_key="]))
    cases.append((_npz(tmp_path, "len.npz", X=np.zeros((5, 2)), y=np.zeros(4)), {},
                  ["'X' has 5 rows", "'y' has 4", "same length"]))
    bad = np.zeros((4, 2))
    bad[2, 1] = np.nan
    cases.append((_npz(tmp_path, "nan.npz", X=bad, y=np.arange(4.0)), {}, ["'X'", "non-finite", "index (2, 1)"]))
    cases.append((_npz(tmp_path, "inf.npz", X=np.zeros((4, 2)), y=np.array([0.5, np.inf, 1.0, 2.0])), {},
                  ["'y'", "non-finite", "index (1,)"]))
    cases.append((_npz(tmp_path, "zero.npz", X=np.zeros((0, 2)), y=np.zeros(0)), {}, ["empty (0 examples)"]))
    cases.append((_npz(tmp_path, "txt.npz", X=np.array([["a", "b"]] * 3), y=np.zeros(3)), {}, ["dtype", "expected numbers"]))
    np.save(tmp_path / "single.npy", np.zeros(3))
    cases.append((tmp_path / "single.npy", {}, ["single .npy array"]))
    for path, opts, phrases in cases:
        with pytest.raises(DataFileError) as e:
            load_npz(path, **opts)
        msg = str(e.value)
        assert str(path) in msg, msg
        for ph in phrases:
            assert ph in msg, (ph, msg)


def test_loaders_do_not_modify_files(tmp_path):
    p = _write(tmp_path, "k.csv", "a,b\n1,2\n3,4\n5,6\n")
    before = p.read_bytes()
    load_csv(p, preprocess="minmax", val_fraction=0, test_fraction=0)
    assert p.read_bytes() == before


# ----------------------------------------------------------------------------- CLI

def _cli(monkeypatch, capsys, *args):
    import sys

    from losslab.cli import app
    from losslab.cli._common import run_app

    monkeypatch.setattr(sys, "argv", ["losslab", *args])
    code = run_app(app)
    cap = capsys.readouterr()
    return code, cap.out, " ".join(cap.err.split())  # rich wraps long lines


def test_cli_data_list_and_show(monkeypatch, capsys, tmp_path):
    import json

    code, out, _ = _cli(monkeypatch, capsys, "data", "list", "--json")
    assert code == 0 and set(json.loads(out)) == set(DATASETS.names())
    code, out, _ = _cli(monkeypatch, capsys, "data", "list")
    assert code == 0 and "seven_points" in out
    code, out, _ = _cli(monkeypatch, capsys, "data", "show", "moons", "--opt", "n=50", "--json")
    r = json.loads(out)
    assert code == 0 and r["task"] == "classification" and r["n_classes"] == 2
    assert r["splits"]["train"]["X_shape"] == [30, 2] and r["splits"]["val"]["n"] == 10 and r["splits"]["test"]["n"] == 10
    code, out, _ = _cli(monkeypatch, capsys, "data", "show", "seven_points")
    assert code == 0 and "regression" in out and "train" in out
    p = _write(tmp_path, "s.csv", "a,b,y\n1,2,3\n4,5,6\n7,8,9\n1,2,4\n5,5,5\n")
    code, out, _ = _cli(monkeypatch, capsys, "data", "show", "csv", "--opt", f"path={p}", "--opt", "target=a", "--json")
    assert code == 0 and json.loads(out)["meta"]["columns"] == ["b", "y"]
    code, out, err = _cli(monkeypatch, capsys, "data", "show", "csv", "--opt", f"path={p}", "--opt", "target=zz")
    assert code == 2 and "'zz' does not exist" in err and "Traceback" not in err
    code, out, err = _cli(monkeypatch, capsys, "data", "show", "mons")
    assert code == 2 and "Did you mean 'moons'" in err
