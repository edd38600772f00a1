"""Study specs: parsing, sweep expansion, hashing, and one-line errors for bad specs (never a traceback)."""
import sys

import pytest

from losslab.experiments import SpecError, load_default_spec, load_spec, spec_hash

GOOD = """
name = "demo"
[data]
name = "moons"
options = { n = 100 }
[model]
name = "mlp"
options = { hidden = [8] }
[train]
optimizer = "sgd"
lr = 0.1
steps = 20
[sweep]
seeds = [0, 1]
"train.lr" = [0.1, 0.2]
widths = [4, 8]
[[analyses]]
kind = "surface"
resolution = 5
[[analyses]]
kind = "hessian"
"""


def _write(tmp_path, text, name="spec.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_spec_expands_as_a_grid(tmp_path):
    s = load_spec(_write(tmp_path, GOOD))
    cfgs = s.configs()
    assert len(cfgs) == 8  # 2 seeds x 2 lrs x 2 widths
    assert {(c.train.seed, c.train.lr, tuple(c.model.options["hidden"])) for _, c in cfgs} == {
        (sd, lr, (w,)) for sd in (0, 1) for lr in (0.1, 0.2) for w in (4, 8)}
    assert [a.kind for a in s.analyses] == ["surface", "hessian"]
    # the hash depends on content, not formatting
    s2 = load_spec(_write(tmp_path, GOOD.replace("lr = 0.1\n", "lr   =   0.1   # same\n"), "b.toml"))
    assert spec_hash(s) == spec_hash(s2)
    s3 = load_spec(_write(tmp_path, GOOD.replace("steps = 20", "steps = 21"), "c.toml"))
    assert spec_hash(s) != spec_hash(s3)


def test_default_study_is_valid_and_small():
    s = load_default_spec()
    assert s.name == "default" and 1 <= len(s.configs()) <= 8


BAD = [  # (spec text, expected one-line message fragment)
    (GOOD.replace('lr = 0.1\n', 'lr = -0.1\n'), "spec.toml: train.lr: must be > 0 (got -0.1)"),
    (GOOD.replace("steps = 20", "steps = 0"), "spec.toml: train.steps: must be > 0 (got 0)"),
    (GOOD.replace("steps = 20", 'steps = "many"'), "spec.toml: train.steps: expected an integer (got str 'many')"),
    (GOOD.replace("steps = 20", "steps = 20\nlearning_rate = 0.1"), "spec.toml: train.learning_rate: unknown key; valid keys: loss, optimizer, lr"),
    (GOOD.replace('[train]', '[trainer]'), "spec.toml: trainer: unknown key"),
    (GOOD.replace('name = "moons"', 'name = "moon"'), "spec.toml: data.name: unknown dataset 'moon'. Valid dataset names:"),
    (GOOD.replace('optimizer = "sgd"', 'optimizer = "adamw2"'), "spec.toml: train.optimizer: unknown optimizer 'adamw2'. Valid optimizer names:"),
    (GOOD.replace('name = "mlp"', 'name = "transformer"'), "spec.toml: model.name: unknown model 'transformer'. Valid model names:"),
    (GOOD.replace("seeds = [0, 1]", "seeds = []"), "spec.toml: sweep.seeds: must not be empty"),
    (GOOD.replace('"train.lr" = [0.1, 0.2]', '"train.lr" = [0.1, -0.2]'), "spec.toml: sweep.train.lr[1]: must be > 0 (got -0.2)"),
    (GOOD.replace('"train.lr"', '"train.lrate"'), "spec.toml: sweep: unknown sweep axis 'train.lrate': train has no field 'lrate'"),
    (GOOD.replace('kind = "surface"', 'kind = "surfaces"'), "spec.toml: analyses[0]: analysis kind must be one of surface, hessian, experiments, dln (got 'surfaces')"),
    (GOOD.replace("resolution = 5", "resolution = 1"), "spec.toml: analyses[0].resolution: must be >= 2 (got 1)"),
    (GOOD.replace('kind = "hessian"', 'kind = "hessian"\ntop_k = 0'), "spec.toml: analyses[1].top_k: must be > 0 (got 0)"),
    (GOOD.replace('kind = "hessian"', 'kind = "experiments"\nnames = ["no_such_thing"]'), "spec.toml: analyses[1].names: unknown experiment 'no_such_thing'"),
    (GOOD.replace('[data]\nname = "moons"', '[data]'), "spec.toml: data.name: required field is missing"),
    ("name = [1", "spec.toml: invalid TOML"),
]


@pytest.mark.parametrize("text,expected", BAD, ids=[e.split(":")[1].strip() + str(i) for i, (_, e) in enumerate(BAD)])
def test_bad_specs_give_one_line_naming_the_field(tmp_path, text, expected):
    with pytest.raises(SpecError) as ei:
        load_spec(_write(tmp_path, text))
    msg = str(ei.value)
    assert "\n" not in msg
    assert expected in msg.replace(str(tmp_path) + "/", ""), msg


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match=r"nope.toml: no such spec file"):
        load_spec(tmp_path / "nope.toml")


def _cli(monkeypatch, capsys, *args):
    from losslab.cli import app
    from losslab.cli._common import run_app

    monkeypatch.setattr(sys, "argv", ["losslab", *args])
    code = run_app(app)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize("i", [0, 1, 2, 3, 5, 8, 9])
def test_cli_bad_spec_is_one_line_no_traceback(tmp_path, monkeypatch, capsys, i):
    text, expected = BAD[i]
    code, out, err = _cli(monkeypatch, capsys, "run", str(_write(tmp_path, text)), "--store", str(tmp_path / "st"))
    assert code == 2
    assert "Traceback" not in err and "Traceback" not in out
    lines = [l for l in err.strip().splitlines() if l.strip()]
    joined = " ".join(l.strip() for l in lines)  # rich wraps long lines at the terminal width
    assert joined.startswith("error: ") and expected.split(": ", 1)[1] in joined, err


def test_cli_missing_spec_file(tmp_path, monkeypatch, capsys):
    code, _, err = _cli(monkeypatch, capsys, "run", str(tmp_path / "missing.toml"), "--store", str(tmp_path / "st"))
    assert code == 2 and "missing.toml: no such spec file" in " ".join(err.split()) and "Traceback" not in err
