"""Hostile inputs to the CLI's store-facing commands: filters that cannot match, a store path that
does not exist, a diverged run, a corrupt result file, --loss with --run, --json failures."""
import json

import numpy as np
import pytest
from conftest import invoke_cli

from losslab.store import open_store


_cli = invoke_cli  # conftest: the CLI's entry point in-process -> (code, stdout, stderr)


TRAIN = ("train", "--data", "moons", "--data-opt", "n=80", "--model-opt", "hidden=[4]", "--optimizer", "sgd",
         "--steps", "5", "--json")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A store with a completed and a diverged (lr=1e9) training run."""
    from losslab.cli import app
    from losslab.cli._common import run_app

    store = tmp_path_factory.mktemp("store")
    ids = {}
    for name, lr in (("ok", "0.1"), ("div", "1e9")):
        import contextlib
        import io
        import sys

        buf = io.StringIO()
        argv, sys.argv = sys.argv, ["losslab", *TRAIN, "--lr", lr, "--name", name, "--store", str(store)]
        try:
            with contextlib.redirect_stdout(buf):
                assert run_app(app) == 0
        finally:
            sys.argv = argv
        ids[name] = json.loads(buf.getvalue())["id"]
    assert open_store(store).get(ids["div"]).status == "diverged"
    return store, ids


def test_diverged_summary_tells_the_truth(runs):
    store, ids = runs
    s = open_store(store).get(ids["div"]).summary
    # the final loss is the diverging one, not the initial evaluation (which keeps its own name)
    assert s["final_train_loss"] == s["diverged_loss"] and s["diverged_loss"] > 1e3
    assert s["last_finite_train_loss"] < 10 and s["last_finite_eval_step"] == 0
    assert s["final_val_loss"] is None and s["final_val_acc"] is None


@pytest.mark.parametrize("args, phrase", [
    (["--where", "final_val_acc>>0.9"], "doubled operator"),
    (["--where", "final_val_acc>abc"], "compares numbers"),
    (["--limit", "-1"], "--limit must be >= 1"),
    (["--status", "bogus"], "--status must be one of running, completed, diverged"),
    (["--kind", "bogus"], "--kind must be one of train, surface"),
])
def test_runs_ls_refuses_malformed_filters(runs, capsys, args, phrase):
    store, _ = runs
    code, out, err = _cli(capsys, "runs", "ls", *args, "--json", "--store", str(store))
    assert code == 2 and phrase in err and "Traceback" not in err
    assert json.loads(out) == {"error": err.split("error: ", 1)[1].strip(), "exit_code": 2}


def test_runs_ls_warns_about_a_key_no_run_has(runs, capsys):
    store, _ = runs
    code, out, err = _cli(capsys, "runs", "ls", "--where", "bogus_metric>0.9", "--json", "--store", str(store))
    assert code == 0 and json.loads(out) == []
    assert "no run here has the key 'bogus_metric'" in err and "final_train_loss" in err
    code, out, err = _cli(capsys, "runs", "ls", "--where", "optimizer=sgd", "--status", "diverged", "--json",
                          "--store", str(store))
    assert code == 0 and len(json.loads(out)) == 1 and "warning" not in err


@pytest.mark.parametrize("args", [
    ["runs", "ls"], ["runs", "show", "x"], ["runs", "compare", "x", "y"], ["runs", "studies"], ["runs", "rm", "x", "--yes"],
    ["surface", "--run", "x"], ["hessian", "--run", "x"], ["report", "x"],
])
def test_reading_commands_do_not_create_a_store(tmp_path, capsys, args):
    where = tmp_path / "no" / "store"
    code, _, err = _cli(capsys, *args, "--store", str(where))
    assert code == 2 and f"no run store at {where}" in err and not where.exists()


def test_compare_needs_two_and_rm_needs_yes(runs, capsys, tmp_path):
    store, ids = runs
    code, _, err = _cli(capsys, "runs", "compare", ids["ok"], "--store", str(store))
    assert code == 2 and "two or more run ids" in err
    code, out, err = _cli(capsys, "runs", "rm", ids["ok"], "--json", "--store", str(store))
    assert code == 2 and "add --yes" in err and json.loads(out)["exit_code"] == 2
    assert open_store(store).get(ids["ok"]).id == ids["ok"]  # nothing was deleted


def test_runs_show_reports_a_corrupt_result_file(runs, capsys):
    store, ids = runs
    st = open_store(store)
    f = st.run_dir(ids["ok"]) / "result.json"
    good = f.read_text()
    try:
        f.write_text("{broken")
        code, out, _ = _cli(capsys, "runs", "show", ids["ok"], "--json", "--store", str(store))
        assert code == 0 and "result.json" in json.loads(out)["problem"] and "corrupt" in json.loads(out)["problem"]
    finally:
        f.write_text(good)


def test_measuring_a_diverged_run_warns_and_records_it(runs, capsys):
    store, ids = runs
    code, out, err = _cli(capsys, "surface", "--run", ids["div"], "--resolution", "3", "--dim", "1", "--json",
                          "--store", str(store))
    assert code == 0 and "status 'diverged'" in err and "blew up" in err
    res = json.loads(out)
    assert res["warnings"] and "diverged" in res["warnings"][0]
    assert open_store(store).get(res["run_id"]).settings["run_status"] == "diverged"
    code, out, err = _cli(capsys, "hessian", "--run", ids["div"], "--json", "--store", str(store))
    assert code == 0 and "status 'diverged'" in err and json.loads(out)["warnings"]
    # a completed run: no warning
    code, out, err = _cli(capsys, "hessian", "--run", ids["ok"], "--no-save", "--json", "--store", str(store))
    assert code == 0 and "warning" not in err and json.loads(out)["warnings"] == []


def test_surface_on_a_run_honours_loss_like_hessian(runs, capsys):
    store, ids = runs
    code, out, _ = _cli(capsys, "surface", "--run", ids["ok"], "--loss", "hinge", "--resolution", "3", "--dim", "1",
                        "--json", "--store", str(store))
    assert code == 0
    res = json.loads(out)
    assert res["command"]["loss"] == "hinge" and res["settings"]["loss"] == "hinge"
    # a loss that does not fit the run's model: both commands use it, so both refuse it the same way
    for cmd in ("surface", "hessian"):
        code, _, err = _cli(capsys, cmd, "--run", ids["ok"], "--loss", "mse", "--resolution" if cmd == "surface"
                            else "--top", "3", "--store", str(store))
        assert code == 2 and "loss 'mse' cannot be evaluated" in err, (cmd, err)


def test_surface_split_error_names_the_runs_dataset(runs, capsys):
    store, ids = runs
    code, _, err = _cli(capsys, "surface", "--run", ids["ok"], "--split", "dev", "--store", str(store))
    assert code == 2 and "dataset 'moons'" in err and "digits" not in err


def test_even_resolution_labels_the_point_it_reports(runs, capsys):
    store, ids = runs
    code, _, err = _cli(capsys, "surface", "--run", ids["ok"], "--resolution", "4", "--dim", "1", "--store", str(store))
    assert code == 0 and "nearest the model, at (" in err and "loss at centre" not in err


def test_loss_centre_is_the_point_at_coordinate_zero():
    from losslab.store.analyses import surface_arrays

    axis = np.array([-1.0, 0.0, 1.0, 2.0, 3.0])  # an off-centre grid: the model (0) is not the middle index
    _, summary = surface_arrays([axis], np.array([5.0, 1.0, 7.0, 8.0, 9.0]))
    assert summary["loss_centre"] == 1.0
