"""`losslab train` and `losslab runs`: a run goes to the store; Ctrl-C records an interrupted run."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

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


def test_train_saves_a_run_equal_to_the_api(tmp_path, monkeypatch, capsys):
    from losslab.data import load
    from losslab.models import build
    from losslab.train import train

    code, out, _ = _cli(monkeypatch, capsys, "train", "--data", "moons", "--data-opt", "n=100", "--model", "mlp",
                        "--model-opt", "hidden=[6]", "--optimizer", "sgd", "--lr", "0.2", "--steps", "30",
                        "--batch-size", "16", "--seed", "3", "--json", "--store", str(tmp_path))
    assert code == 0
    info = json.loads(out)
    st = open_store(tmp_path)
    rec = st.get(info["id"])
    assert rec.status == "completed" and rec.kind == "train" and rec.settings["lr"] == 0.2
    assert rec.settings["model_options"] == {"hidden": [6]} and rec.versions["torch"]
    # the same run through the Python API gives the same numbers
    splits = load("moons", seed=3, n=100)
    ref = train(build("mlp", seed=3, in_dim=2, out_dim=2, hidden=[6]), splits, optimizer="sgd", lr=0.2, steps=30,
                batch_size=16, seed=3)
    np.testing.assert_array_equal(st.load_arrays(rec.id)["train_loss"], ref.train_loss)

    # runs ls / show / compare / rm with --json
    code, out, _ = _cli(monkeypatch, capsys, "runs", "--json", "--store", str(tmp_path))
    assert code == 0 and [r["id"] for r in json.loads(out)] == [rec.id]
    code, out, _ = _cli(monkeypatch, capsys, "runs", "ls", "--where", "final_train_loss<0", "--json", "--store", str(tmp_path))
    assert json.loads(out) == []
    code, out, _ = _cli(monkeypatch, capsys, "runs", "show", rec.id[:20], "--json", "--store", str(tmp_path))
    shown = json.loads(out)
    assert shown["id"] == rec.id and shown["arrays"]["snapshots"][1] > 0 and shown["problem"] is None
    code, out, _ = _cli(monkeypatch, capsys, "runs", "compare", rec.id, rec.id, "--json", "--store", str(tmp_path))
    assert json.loads(out)["settings"] == {}
    (st.run_dir(rec.id) / "arrays.npz").write_bytes(b"broken")
    code, out, _ = _cli(monkeypatch, capsys, "runs", "show", rec.id, "--json", "--store", str(tmp_path))
    assert code == 0 and "corrupt" in json.loads(out)["problem"]
    code, out, _ = _cli(monkeypatch, capsys, "runs", "rm", rec.id, "--yes", "--json", "--store", str(tmp_path))
    assert json.loads(out)["removed"] == [rec.id] and st.list() == []


def test_train_bad_name_is_one_line(tmp_path, monkeypatch, capsys):
    code, out, err = _cli(monkeypatch, capsys, "train", "--data", "moons", "--optimizer", "sgdd", "--store", str(tmp_path))
    assert code == 2 and "unknown optimizer 'sgdd'" in err and "Traceback" not in err


def test_store_from_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOSSLAB_STORE", str(tmp_path / "env-store"))
    code, out, _ = _cli(monkeypatch, capsys, "train", "--data", "seven_points", "--model", "linear", "--optimizer", "gd",
                        "--lr", "0.01", "--steps", "5", "--json")
    assert code == 0 and len(open_store(tmp_path / "env-store").list()) == 1


def _train_then_ctrl_c(store, wait):
    proc = subprocess.Popen([sys.executable, "-m", "losslab", "train", "--data", "moons", "--steps", "100000000",
                             "--optimizer", "sgd", "--batch-size", "8", "--eval-every", "1000", "--store", str(store),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            # a shell without job control starts background jobs with SIGINT ignored, and a child
                            # inherits that (Python then installs no KeyboardInterrupt handler): restore the default
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline:  # the run is in the index as 'running' while it trains
        if (store / "index.sqlite").exists() and open_store(store).list(status="running"):
            break
        time.sleep(0.1)
    time.sleep(wait)  # training is under way (its first steps import parts of torch lazily)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-1500:]
    (rec,) = open_store(store).list()
    assert rec.status == "interrupted"
    return rec


@pytest.mark.slow
def test_ctrl_c_records_an_interrupted_run(tmp_path):
    # On a loaded machine the first steps can take longer than the first wait: a Ctrl-C that lands before
    # training starts is recorded as interrupted with steps_run 0, and the test tries again with a longer wait.
    for attempt, wait in enumerate((5.0, 20.0)):
        rec = _train_then_ctrl_c(tmp_path / f"store{attempt}", wait)
        if rec.summary["steps_run"] > 0:
            break
        assert rec.message == "interrupted before training started"
    assert rec.summary["steps_run"] > 0
    arr = open_store(tmp_path / f"store{attempt}").load_arrays(rec.id)
    assert len(arr["train_loss"]) == rec.summary["steps_run"]
