"""Bad input on the command line: one clear line and exit code 2, never a traceback."""
import json
import subprocess
import sys

import pytest
from conftest import invoke_cli


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "losslab", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


@pytest.mark.parametrize("args, expect", [
    (["runs", "show", "nope"], "no run 'nope'"),
    (["train", "--data", "nope"], "Valid dataset names"),
    (["train", "--steps", "abc"], "Invalid value for '--steps'"),
    (["dln", "depth", "--no-such-option"], "No such option"),
    (["experiments", "run", "nope"], "Valid experiment names"),
])
def test_cli_errors_are_one_clear_message(tmp_path, args, expect):
    from losslab.store import open_store

    open_store(tmp_path / "store")  # an existing (empty) store: reading commands no longer create one
    r = run(*args, "--store", str(tmp_path / "store"), cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert expect in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


def test_corrupt_store_index_is_a_clear_error(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "index.sqlite").write_text("not a database")
    r = run("runs", "--store", str(store), cwd=tmp_path)
    assert r.returncode == 2 and "not a readable SQLite database" in r.stderr and "Traceback" not in r.stderr


_cli = invoke_cli  # conftest: the CLI's entry point in-process -> (code, stdout, stderr)


def _raising_app(exc):
    import typer

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.command()
    def boom(json_: bool = typer.Option(False, "--json")):
        raise exc

    return app


@pytest.mark.parametrize("exc, code, phrase", [
    (MemoryError(), 2, "error: out of memory (MemoryError); use a smaller grid"),
    (RuntimeError("deep\n  inside torch"), 1, "internal error: RuntimeError: deep inside torch (set LOSSLAB_DEBUG=1"),
    (ValueError("bad\nvalue"), 2, "error: bad value"),
])
def test_unexpected_errors_are_one_line(capsys, monkeypatch, exc, code, phrase):
    monkeypatch.delenv("LOSSLAB_DEBUG", raising=False)
    rc, out, err = _cli(capsys, app=_raising_app(exc))
    assert rc == code and phrase in err and err.count("\n") == 1 and "Traceback" not in err and out == ""
    rc, out, err = _cli(capsys, "--json", app=_raising_app(exc))  # --json: a JSON error object on stdout too
    assert rc == code and json.loads(out)["exit_code"] == code and phrase.split(": ", 1)[1][:20] in json.loads(out)["error"]
    monkeypatch.setenv("LOSSLAB_DEBUG", "1")  # the traceback, for debugging
    with pytest.raises(type(exc)):
        _cli(capsys, app=_raising_app(exc))


def test_ctrl_c_keeps_exit_code_130(capsys):
    assert _cli(capsys, app=_raising_app(KeyboardInterrupt()))[0] == 130


@pytest.mark.parametrize("device, phrase", [("tpu9", "--device must be cpu, cuda"),
                                            ("cuda:99", "--device cuda:99")])
def test_surface_bad_device_is_one_line(tmp_path, capsys, device, phrase):
    rc, _, err = _cli(capsys, "surface", "--device", device, "--train-steps", "1", "--store", str(tmp_path))
    assert rc == 2 and phrase in err and "Traceback" not in err
    assert not (tmp_path / "index.sqlite").exists()  # refused before any training


def test_bad_checkpoints_name_the_file(tmp_path, capsys):
    import torch

    from losslab.cli.hessian import save_checkpoint
    from losslab.models import build

    ck = save_checkpoint(build("mlp", in_dim=2, out_dim=2, hidden=[8]), tmp_path / "m.pt", model_name="mlp",
                         model_options={"hidden": [8]}, data="moons", data_options={"n": 60})
    spec = json.loads(ck.with_suffix(".json").read_text())
    assert _cli(capsys, "hessian", "--checkpoint", str(ck), "--no-save")[0] == 0
    # the spec describes another width than the saved weights
    ck.with_suffix(".json").write_text(json.dumps({**spec, "model_options": {"hidden": [16]}}))
    rc, _, err = _cli(capsys, "hessian", "--checkpoint", str(ck), "--no-save")
    assert rc == 2 and f"checkpoint {ck} does not fit the model mlp" in err and "[8, 2] vs [16, 2]" in err
    assert err.count("\n") == 1
    # garbage bytes
    ck.with_suffix(".json").write_text(json.dumps(spec))
    ck.write_bytes(b"not a checkpoint at all")
    rc, _, err = _cli(capsys, "hessian", "--checkpoint", str(ck), "--no-save")
    assert rc == 2 and f"checkpoint {ck} is not a readable torch state_dict" in err
    torch.save([1, 2], ck)
    rc, _, err = _cli(capsys, "hessian", "--checkpoint", str(ck), "--no-save")
    assert rc == 2 and "not a state_dict of tensors" in err
    # a corrupt spec
    ck.with_suffix(".json").write_text("{oops")
    rc, _, err = _cli(capsys, "hessian", "--checkpoint", str(ck), "--no-save")
    assert rc == 2 and f"model spec {ck.with_suffix('.json')} is not valid JSON" in err


def test_bad_json_option_value_is_refused(capsys, tmp_path):
    from losslab.cli._common import parse_options

    assert parse_options(["hidden=[8, 8]", "act=relu", "x=1.5"]) == {"hidden": [8, 8], "act": "relu", "x": 1.5}
    with pytest.raises(ValueError, match="'hidden=\\[8': the value '\\[8' is not valid JSON"):
        parse_options(["hidden=[8"])
    rc, _, err = _cli(capsys, "surface", "--model-opt", "hidden=[8", "--train-steps", "1", "--store", str(tmp_path))
    assert rc == 2 and "is not valid JSON" in err


def test_hessian_trace_samples(capsys):
    args = ("hessian", "--data", "moons", "--data-opt", "n=60", "--model", "mlp", "--model-opt", "hidden=[3]",
            "--top", "0", "--trace", "--no-save", "--json")
    rc, _, err = _cli(capsys, *args, "--trace-samples", "1")
    assert rc == 2 and "--trace-samples must be >= 2" in err
    rc, out, err = _cli(capsys, *args, "--trace-samples", "3")  # fewer than the default minimum of 10: fine
    assert rc == 0, err
    assert json.loads(out)["blocks"]["all parameters"]["trace"]["samples"] <= 3
