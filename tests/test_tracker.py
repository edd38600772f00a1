"""losslab.Tracker: what ``train(..., sharpness_every=k)`` records, recorded from a plain PyTorch loop.

References: ``losslab.train`` run with the same model, seed, optimizer, lr and batch order (its
loop is the one the tracked loop must reproduce); an exact Hessian eigenvalue
(``torch.autograd.functional.hessian`` in float64, independent of losslab's Lanczos/HVP code);
the model's state before and after tracking."""
import copy
import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import losslab
from losslab import Tracker, build, load, train
from losslab.store import open_store


def _cli(monkeypatch, capsys, *args):
    from losslab.cli import app
    from losslab.cli._common import run_app

    monkeypatch.setattr(sys, "argv", ["losslab", *args])
    try:
        code = run_app(app)
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def moons():
    s = load("moons", seed=0, n=200)
    return s.train.X, s.train.y


def _mlp(seed=0, **kw):
    return build("mlp", in_dim=2, hidden=[8], out_dim=2, activation="tanh", seed=seed, **kw)


def _plain_loop(model, X, y, *, steps, every, lr, momentum=0.0, batch_size=None, seed=0, store=None, **kw):
    """The user's loop: torch.optim.SGD and F.cross_entropy, minibatches in train()'s order
    (torch.randperm from a generator seeded with ``seed``, a new permutation per epoch)."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    n = X.shape[0]
    gen = torch.Generator().manual_seed(seed)
    order, cursor = torch.randperm(n, generator=gen), 0
    with Tracker(model, loss="cross_entropy", data=(X, y), every=every, optimizer=opt, seed=seed, store=store,
                 **kw) as tr:
        for _ in range(steps):
            if batch_size is None:
                Xb, yb = X, y
            else:
                if cursor + batch_size > n:
                    order, cursor = torch.randperm(n, generator=gen), 0
                idx = order[cursor:cursor + batch_size]
                cursor += batch_size
                Xb, yb = X[idx], y[idx]
            opt.zero_grad()
            loss = F.cross_entropy(model(Xb), yb)
            loss.backward()
            tr.step(loss)
            opt.step()
    return tr


@pytest.mark.parametrize("batch_size,momentum", [(None, 0.0), (32, 0.9)])
def test_tracked_loop_records_what_train_records(moons, batch_size, momentum):
    X, y = moons
    net = _mlp()
    ref = train(net, (X, y), loss="cross_entropy", optimizer="sgd", lr=0.5, steps=30, batch_size=batch_size,
                optimizer_options={"momentum": momentum}, eval_every=5, snapshot_every=5, sharpness_every=5, seed=0)
    tr = _plain_loop(copy.deepcopy(net), X, y, steps=30, every=5, lr=0.5, momentum=momentum, batch_size=batch_size)
    t = tr.trajectory
    assert t.status == ref.status == "completed"
    np.testing.assert_array_equal(t.steps, ref.steps)
    # F.cross_entropy (fused mean) vs losslab's per-example mean: the same number up to float32
    # rounding of the reduction (measured 1.2e-7); the parameters and gradients agree bit for bit
    np.testing.assert_allclose(t.train_loss, ref.train_loss, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(t.grad_norm, ref.grad_norm)
    np.testing.assert_array_equal(t.lr, ref.lr)
    np.testing.assert_array_equal(t.snapshot_steps, ref.snapshot_steps)
    assert list(t.snapshot_steps) == [0, 5, 10, 15, 20, 25, 30]
    np.testing.assert_array_equal(t.snapshots, ref.snapshots)
    np.testing.assert_array_equal(t.eval_steps, ref.eval_steps)
    np.testing.assert_array_equal(t.train_eval_loss, ref.train_eval_loss)
    for k in ("lambda_max", "two_over_lr"):
        np.testing.assert_array_equal(t.metrics[k][0], ref.metrics[k][0])
        # the same Lanczos (seed + step, warm start) on the same parameters: equal to float
        # rounding; train's own tolerance is the Lanczos residual tol 1e-4
        np.testing.assert_allclose(t.metrics[k][1], ref.metrics[k][1], rtol=1e-6)
    if momentum:
        np.testing.assert_allclose(t.metrics["two_one_plus_beta_over_lr"][1], 2 * 1.9 / 0.5)
    assert set(t.summary()) >= {"status", "steps_run", "final_train_loss", "n_params"}


def _exact_lambda_max(model, X, y, flat):
    """Top eigenvalue of the Hessian of the mean cross-entropy at the flat parameters ``flat``,
    by torch.autograd.functional.hessian (dense, float64) and eigvalsh."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]

    def f(theta):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            parts[n] = theta[i:i + k].reshape(s)
            i += k
        return F.cross_entropy(torch.func.functional_call(model, parts, (X,)), y)

    H = torch.autograd.functional.hessian(f, torch.as_tensor(flat, dtype=torch.float64))
    return float(torch.linalg.eigvalsh(H)[-1])


def test_lambda_max_is_the_exact_top_hessian_eigenvalue(moons):
    X, y = moons[0][:40].double(), moons[1][:40]
    model = build("mlp", in_dim=2, hidden=[3], out_dim=2, activation="tanh", seed=1).double()
    tr = _plain_loop(model, X, y, steps=9, every=3, lr=1.0, sharpness_tol=1e-10)
    st, lam = tr.trajectory.metrics["lambda_max"]
    assert list(st) == [0, 3, 6]
    snaps = dict(zip(tr.trajectory.snapshot_steps.tolist(), tr.trajectory.snapshots))
    exact = [_exact_lambda_max(model, X, y, snaps[s]) for s in st]
    # float64, Lanczos run to residual 1e-10: the eigenvalue is exact to ~1e-12 relative
    np.testing.assert_allclose(lam, exact, rtol=1e-8)
    np.testing.assert_allclose(tr.trajectory.metrics["two_over_lr"][1], 2.0)
    assert len(set(np.round(exact, 6))) > 1  # the curvature moved: a constant would not test the step alignment


def test_report_writes_html_for_a_tracked_run(moons, tmp_path, monkeypatch, capsys):
    X, y = moons
    tr = _plain_loop(_mlp(), X, y, steps=20, every=5, lr=0.5, store=tmp_path / "s", name="my loop")
    rec = open_store(tmp_path / "s").get(tr.run_id)
    assert rec.kind == "train" and rec.status == "completed" and rec.name == "my loop"
    assert rec.settings["source"] == "tracker" and rec.settings["sharpness_every"] == 5
    assert rec.summary["steps_run"] == 20
    out_html = tmp_path / "r.html"
    code, out, err = _cli(monkeypatch, capsys, "report", tr.run_id, "--store", str(tmp_path / "s"), "-o",
                          str(out_html), "--json")
    assert code == 0, err
    assert json.loads(out)["paths"] == [str(out_html.resolve())]
    html = out_html.read_text()
    assert "sharpness against 2/lr" in html and "gradient norm" in html


def test_a_users_own_model_gives_a_clear_error_for_surface_run(moons, tmp_path, monkeypatch, capsys):
    X, y = moons
    tr = _plain_loop(_mlp(), X, y, steps=6, every=3, lr=0.5, store=tmp_path / "s")
    code, _, err = _cli(monkeypatch, capsys, "surface", "--run", tr.run_id, "--store", str(tmp_path / "s"),
                        "--resolution", "3")
    assert code != 0 and "losslab.Tracker" in err and "pca_directions" in err and "Traceback" not in err


def test_a_tracked_builtin_model_with_its_settings_can_be_analysed(tmp_path, monkeypatch, capsys):
    splits = load("moons", seed=0, n=100)
    X, y = splits.train.X, splits.train.y
    tr = _plain_loop(_mlp(), X, y, steps=6, every=3, lr=0.5, store=tmp_path / "s",
                     settings={"data": "moons", "data_options": {"n": 100}, "model": "mlp",
                               "model_options": {"hidden": [8], "activation": "tanh"}})
    code, out, err = _cli(monkeypatch, capsys, "hessian", "--run", tr.run_id, "--no-save", "--json", "--store",
                          str(tmp_path / "s"))
    assert code == 0, err
    loaded = losslab.load_trained_run(open_store(tmp_path / "s"), tr.run_id)
    np.testing.assert_array_equal(losslab.params.flatten_params(loaded.model).numpy(), tr.trajectory.snapshots[-1])


@pytest.mark.parametrize("exc,status", [(RuntimeError("boom"), "failed"), (KeyboardInterrupt(), "interrupted")])
def test_an_exception_in_the_loop_keeps_the_recorded_steps(moons, tmp_path, exc, status):
    X, y = moons
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with pytest.raises(type(exc)):
        with Tracker(model, loss="cross_entropy", data=(X, y), every=2, optimizer=opt, store=tmp_path) as tr:
            for s in range(10):
                opt.zero_grad()
                loss = F.cross_entropy(model(X), y)
                loss.backward()
                tr.step(loss)
                if s == 6:
                    raise exc  # between tr.step and opt.step: step 6's update never ran
                opt.step()
    st = open_store(tmp_path)
    rec = st.get(tr.run_id)
    assert rec.status == status and rec.summary["steps_run"] == 7
    if status == "failed":
        assert "RuntimeError: boom" in rec.message
    a = st.load_arrays(tr.run_id)
    assert list(a["steps"]) == list(range(7)) and len(a["train_loss"]) == 7
    # the last snapshot is the model as it is, labelled with step 6 (its update never ran)
    assert a["snapshot_steps"][-1] == 6
    np.testing.assert_array_equal(a["snapshots"][-1], losslab.params.flatten_params(model).detach().numpy())


def test_nan_loss_is_diverged_and_stops_recording(moons):
    X, y = moons
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Tracker(model, loss="cross_entropy", data=(X, y), every=5, optimizer=opt) as tr:
        for s in range(10):
            opt.zero_grad()
            loss = F.cross_entropy(model(X), y) * (float("nan") if s == 3 else 1.0)
            loss.backward()
            if not tr.step(loss):
                break
            opt.step()
        assert tr.step(loss) is False  # nothing more is recorded
    t = tr.trajectory
    assert t.status == "diverged" and t.status_step == 3 and len(t.steps) == 4
    assert np.isnan(t.train_loss[-1]) and "at step 3" in t.message


class DictNet(nn.Module):
    """A model whose forward returns a dict, as Hugging Face models do."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return {"logits": self.inner(x), "hidden": x}


def test_dict_output_and_dict_batches(moons):
    X, y = moons
    plain = _plain_loop(_mlp(), X, y, steps=10, every=5, lr=0.5).trajectory
    model = DictNet(_mlp())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    batches = [{"x": X[i:i + 50], "label": y[i:i + 50]} for i in range(0, X.shape[0], 50)]  # a DataLoader's dicts
    with Tracker(model, loss="cross_entropy", data=batches, batch_keys=("x", "label"), output="logits", every=5,
                 optimizer=opt) as tr:
        for _ in range(10):
            opt.zero_grad()
            loss = F.cross_entropy(model(X)["logits"], y)
            loss.backward()
            tr.step(loss)
            opt.step()
    t = tr.trajectory
    np.testing.assert_array_equal(t.snapshots, plain.snapshots)
    # batched full-data loss and Hessian (sum over 4 batches) vs the one-batch ones: float rounding
    np.testing.assert_allclose(t.train_eval_loss, plain.train_eval_loss, rtol=1e-6)
    np.testing.assert_allclose(t.metrics["lambda_max"][1], plain.metrics["lambda_max"][1], rtol=1e-4)
    assert t.settings["output"] == "logits" and t.settings["measured_on"] == "loader"


def test_tracking_leaves_the_model_as_it_was(moons):
    X, y = moons
    model = build("mlp", in_dim=2, hidden=[8], out_dim=2, activation="tanh", dropout=0.5, seed=0)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    tr = Tracker(model, loss="cross_entropy", data=(X, y), every=1, optimizer=opt)
    loss = F.cross_entropy(model(X), y)
    loss.backward()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    tr.step(loss)  # measures: full-data loss, lambda_max, snapshot
    assert "lambda_max" in tr._metrics
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters())
    assert [m.training for m in model.modules()] == modes and model.training
    assert torch.equal(torch.get_rng_state(), rng)  # the user's dropout / shuffling draws are unchanged
    opt.step()
    tr.close()
    assert opt._optimizer_step_post_hooks == {}  # the hook counting optimizer steps is removed


def test_without_data_it_records_loss_grad_norm_and_snapshots(moons, tmp_path, monkeypatch, capsys):
    X, y = moons
    model = _mlp()
    with torch.no_grad():
        theta = [p.clone() for p in model.parameters()]
    with Tracker(model, every=4, lr=0.1, store=tmp_path) as tr:  # a hand-written update, no optimizer
        for _ in range(8):
            model.zero_grad()
            loss = F.cross_entropy(model(X), y)
            loss.backward()
            tr.step(loss)
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
    t = tr.trajectory
    assert list(t.snapshot_steps) == [0, 4, 8] and t.metrics == {} and len(t.eval_steps) == 0
    np.testing.assert_array_equal(t.snapshots[0], torch.cat([p.flatten() for p in theta]).numpy())
    np.testing.assert_array_equal(t.lr, np.full(8, 0.1))
    assert np.all(np.diff(t.train_loss) < 0)  # full-batch GD at a small lr goes down
    code, _, err = _cli(monkeypatch, capsys, "report", tr.run_id, "--store", str(tmp_path), "-o",
                        str(tmp_path / "r.html"))
    assert code == 0, err


def test_the_run_is_running_in_the_store_while_the_loop_goes(moons, tmp_path):
    X, y = moons
    model = _mlp()
    with Tracker(model, every=2, lr=0.1, store=tmp_path) as tr:
        assert open_store(tmp_path).get(tr.run_id).status == "running"
        loss = F.cross_entropy(model(X), y)
        loss.backward()
        tr.step(loss)
    assert open_store(tmp_path).get(tr.run_id).status == "completed"
    with pytest.raises(RuntimeError, match="closed"):
        tr.step(loss)


def test_step_after_optimizer_step_is_refused(moons):
    X, y = moons
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    tr = Tracker(model, every=2, optimizer=opt)
    loss = F.cross_entropy(model(X), y)
    loss.backward()
    opt.step()
    with pytest.raises(RuntimeError, match="before optimizer.step"):
        tr.step(loss)


@pytest.mark.parametrize("kw,match", [
    ({"every": 0}, "every must be a positive integer"),
    ({"data": "X"}, "loss="),
    ({"sharpness": True}, "sharpness=True measures lambda_max on data"),
    ({"lr": -1.0}, "lr must be a positive"),
    ({"loss": "cross_entropy", "data": "XY"}, "sharpness compares lambda_max with 2/lr"),
])
def test_bad_input_is_a_clear_error(moons, kw, match):
    kw = dict(kw)
    if kw.get("data") == "X":
        kw["data"] = moons
    elif kw.get("data") == "XY":
        kw["data"] = moons
    with pytest.raises(ValueError, match=match):
        Tracker(_mlp(), **kw)
    with pytest.raises(ValueError, match="scalar loss"):
        Tracker(_mlp(), every=1).step(torch.ones(3))


def test_adam_settings_and_a_validation_split_are_recorded(tmp_path):
    splits = load("moons", seed=0, n=200)
    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with Tracker(model, loss="cross_entropy", data=splits, every=5, optimizer=opt, store=tmp_path) as tr:
        for _ in range(10):
            opt.zero_grad()
            loss = F.cross_entropy(model(splits.train.X), splits.train.y)
            loss.backward()
            tr.step(loss)
            opt.step()
    rec = open_store(tmp_path).get(tr.run_id)
    assert rec.settings["optimizer"] == "adam" and rec.settings["optimizer_options"]["betas"] == [0.9, 0.999]
    assert rec.settings["lr"] == 1e-2 and rec.settings["n_train"] == splits.train.n
    t = tr.trajectory
    # the validation loss is the mean cross-entropy of the final model on the val split
    with torch.no_grad():
        ref = float(F.cross_entropy(model(splits.val.X), splits.val.y))
    assert list(t.eval_steps) == [0, 5, 10] and abs(t.val_loss[-1] - ref) < 1e-6
