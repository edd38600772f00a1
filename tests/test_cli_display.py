"""What the command line prints for people: run ids and parameter names whole (copyable) at any
width and when not on a terminal, numbers with 4 significant digits (one helper), summaries as
tables instead of a Python dict, dataset descriptions whole."""
from __future__ import annotations

import re

import pytest
from conftest import invoke_cli

from losslab.cli import _common
from losslab.cli._format import num, value

_FLOAT = re.compile(r"(?<![\w.-])-?(\d+\.\d+)(?:e[-+]\d+)?(?![\w.])")


class _LongFloats:
    """Finds floats printed with more than 5 significant digits (what the CLI must not print for people)."""

    @staticmethod
    def search(text: str):
        for m in _FLOAT.finditer(text):
            if len(m.group(1).replace(".", "").lstrip("0")) > 5:
                return m
        return None


LONG_FLOAT = _LongFloats()


@pytest.fixture
def narrow(monkeypatch):
    """The CLI's stdout console as a 60-column non-terminal (as under a pipe or CliRunner)."""
    monkeypatch.setattr(_common.out, "width", 60)
    monkeypatch.setattr(_common.console, "width", 60)
    assert not _common.out.is_terminal


def test_num_is_four_significant_digits():
    assert num(0.123456789) == "0.1235"
    assert num(1234567.0) == "1.235e+06"
    assert num(3) == "3" and num(None) == "-" and num(float("nan")) == "nan"
    assert value({"a": 0.30000000000000004, "b": [1, 2.000001]}) == "a=0.3, b=[1, 2]"


def test_runs_ls_keeps_ids_whole_when_narrow(tmp_path, capsys, narrow):
    from losslab.store import open_store

    st = open_store(tmp_path / "s")
    ids = []
    for k in range(3):
        rid = st.new_run(name=f"a rather long run name number {k}", kind="train", settings={"lr": 0.1})
        st.finish(rid, status="completed", summary={"final_train_loss": 0.1234567890123 * (k + 1)})
        ids.append(rid)
    code, out, err = invoke_cli(capsys, "runs", "ls", "--store", str(tmp_path / "s"))
    assert code == 0, err
    for rid in ids:
        assert len(rid) > 15
        assert any(rid in line for line in out.splitlines()), (rid, out)  # on one line, whole
    assert "0.1235" in out and not LONG_FLOAT.search(out), out


def test_dln_depth_prints_a_table_not_a_dict(tmp_path, capsys, narrow):
    code, out, err = invoke_cli(capsys, "dln", "depth", "--quick", "--no-save")
    assert code == 0, err
    text = out + err
    assert "{'" not in text and not text.rstrip().endswith("}"), text[-400:]
    assert "measured" in text and not LONG_FLOAT.search(text), text[-800:]


def test_data_show_and_list_keep_descriptions_whole(capsys, narrow):
    from losslab.data import DATASETS

    code, out, _ = invoke_cli(capsys, "data", "show", "adding")
    assert code == 0
    # the whole first paragraph of the docstring, not its first line (which stops at "U[0,1],")
    assert "(value in U[0,1], marker)" in out and "(the trivial loss)." in out
    code, out, _ = invoke_cli(capsys, "data", "list")
    assert code == 0
    assert "(the trivial loss)." in " ".join(out.split())
    assert len(DATASETS.names()) >= 5


def test_gradcheck_keeps_parameter_names_whole(capsys, narrow):
    from losslab.models import build

    code, out, err = invoke_cli(capsys, "gradcheck", "-m", "mlp", "-d", "moons", "--model-opt", "hidden=[4,4]",
                                "--max-per-tensor", "3", "--max-examples", "16")
    assert code == 0, err
    names = [n for n, _ in build("mlp", in_dim=2, out_dim=2, hidden=[4, 4]).named_parameters()]
    assert len(names) == 6  # three linear layers: weight and bias each
    for n in names:
        assert re.search(rf"(^|\s){re.escape(n)}(\s|$)", out, re.M), (n, out)
    assert "…" not in out


def test_train_summary_uses_one_number_format(tmp_path, capsys, narrow):
    code, out, err = invoke_cli(capsys, "train", "-d", "seven_points", "-m", "linear", "-o", "gd", "--lr", "0.01",
                                "--steps", "7", "--store", str(tmp_path / "s"))
    assert code == 0, err
    line = next(l for l in out.splitlines() if "final train loss" in l)
    assert not LONG_FLOAT.search(line), line
    loss = re.search(r"final train loss (\S+?)[,\s]", line + " ").group(1)
    assert len(loss.replace(".", "").replace("-", "").lstrip("0").split("e")[0]) <= 4, line
