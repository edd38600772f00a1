"""Bad input on the command line: one clear line and exit code 2, never a traceback."""
import subprocess
import sys

import pytest


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
