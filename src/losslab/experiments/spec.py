"""Study specs: a TOML file that describes a study once (data, model, training, analyses, sweep axes).

Validated with pydantic at the boundary. Every error is ONE line naming the file, the field and
what was expected, e.g. ``spec.toml: train.lr: must be > 0 (got -0.1)``; unknown registry names
list the valid ones. Example::

    name = "lr-vs-seed"

    [data]
    name = "moons"
    options = { n = 200 }

    [model]
    name = "mlp"
    options = { hidden = [16] }      # in_dim / out_dim default to the data's

    [train]
    optimizer = "sgd"
    lr = 0.1
    steps = 200
    batch_size = 32

    [sweep]                           # a grid: every combination is one training run
    seeds = [0, 1]                    # alias of "train.seed"
    "train.lr" = [0.05, 0.1]          # any dotted path into data / model / train

    [[analyses]]                      # run on every trained model (surface, hessian) or once (experiments, dln)
    kind = "surface"
    resolution = 21
    chunks = 4                        # the grid is split in 4 units (sharded over workers, resumable)
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import itertools
import json
import tomllib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class SpecError(ValueError):
    """A spec that cannot be run: the message is one line, ``FILE: FIELD: what was expected (got ...)``."""


def _check_name(registry_loader, value: str) -> str:
    """Validate ``value`` against a registry (imported lazily); unknown names list the valid ones."""
    reg = registry_loader()
    if reg is None:
        return value
    reg.get(value)  # raises UnknownNameError (a ValueError) listing valid names
    return value


def _datasets():
    from ..data import DATASETS

    return DATASETS


def _models():
    from ..models import MODELS

    return MODELS


def _inits():
    from ..models import INITS

    return INITS


def _optimizers():
    from ..optim import OPTIMIZERS

    return OPTIMIZERS


def _schedules():
    from ..optim import SCHEDULES

    return SCHEDULES


def _losses():
    from ..losses import LOSSES

    return LOSSES


def _directions():
    try:
        from ..landscape.directions import DIRECTIONS
    except ImportError:  # landscape not installed/ready: accept the name, fail at run time
        return None
    return DIRECTIONS


def _phenomena():
    try:
        from ..phenomena import EXPERIMENTS
    except ImportError:
        return None
    return EXPERIMENTS


def dln_experiments():
    """The registry of deep-linear-network experiments (lazily; None if the dln package has none)."""
    import importlib

    for mod in ("losslab.phenomena.dln_runs",):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        reg = getattr(m, "EXPERIMENTS", None)
        if reg is not None:
            return reg
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PosInt = Annotated[int, Field(gt=0)]


class DataSpec(_Strict):
    """Which dataset (``losslab.data.load(name, seed=seed, **options)``)."""

    name: str
    seed: int = 0
    options: dict[str, Any] = {}

    _name = field_validator("name")(lambda cls, v: _check_name(_datasets, v))


class ModelSpec(_Strict):
    """Which model (``losslab.models.build(name, init=, init_scale=, seed=, **options)``); ``in_dim`` and
    ``out_dim`` default to the data's when the model takes them."""

    name: str = "mlp"
    options: dict[str, Any] = {}
    init: str = "default"
    init_scale: PosFloat = 1.0
    seed: int = 0

    _name = field_validator("name")(lambda cls, v: _check_name(_models, v))
    _init = field_validator("init")(lambda cls, v: _check_name(_inits, v))


class TrainSpec(_Strict):
    """Arguments of ``losslab.train`` (loss defaults to the data's)."""

    loss: str | None = None
    optimizer: str = "sgd"
    lr: PosFloat = 0.1
    steps: PosInt = 100
    batch_size: PosInt | None = None
    seed: int = 0
    optimizer_options: dict[str, Any] = {}
    schedule: str = "constant"
    schedule_options: dict[str, Any] = {}
    weight_decay: NonNegFloat = 0.0
    input_noise: NonNegFloat = 0.0
    early_stopping: PosInt | None = None
    eval_every: PosInt = 10
    snapshot_every: PosInt = 10
    grad_clip: PosFloat | None = None
    device: Literal["cpu", "cuda", "auto"] = "cpu"

    _opt = field_validator("optimizer")(lambda cls, v: _check_name(_optimizers, v))
    _sched = field_validator("schedule")(lambda cls, v: _check_name(_schedules, v))
    _loss = field_validator("loss")(lambda cls, v: v if v is None else _check_name(_losses, v))


class SurfaceAnalysis(_Strict):
    """A loss surface around each trained model (``losslab.landscape``), its grid split into ``chunks`` units."""

    kind: Literal["surface"]
    directions: str = "filter"
    dim: Literal[1, 2] = 2
    resolution: Annotated[int, Field(ge=2)] = 21
    span: PosFloat = 1.0
    seed: int = 0
    include_biases: bool = False
    orthogonalize: bool = False
    dtype: Literal["float32", "float64"] = "float32"
    chunks: PosInt = 4

    _dirs = field_validator("directions")(lambda cls, v: _check_name(_directions, v))


class HessianAnalysis(_Strict):
    """Top Hessian eigenvalues of each trained model's full-data training loss (Lanczos)."""

    kind: Literal["hessian"]
    top_k: PosInt = 1
    tol: PosFloat = 1e-6
    max_iter: PosInt | None = None
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float64"


class ExperimentsAnalysis(_Strict):
    """Named training phenomena (``losslab.phenomena``), each run once per study."""

    kind: Literal["experiments"]
    names: Annotated[list[str], Field(min_length=1)]
    quick: bool = True
    seed: int = 0
    options: dict[str, Any] = {}

    @field_validator("names")
    @classmethod
    def _names(cls, v):
        for n in v:
            _check_name(_phenomena, n)
        return v


class DlnAnalysis(_Strict):
    """A deep-linear-network experiment (``losslab.dln``) by name, run once per study."""

    kind: Literal["dln"]
    name: str
    quick: bool = True
    seed: int = 0
    options: dict[str, Any] = {}

    _name = field_validator("name")(lambda cls, v: _check_name(dln_experiments, v))


Analysis = Annotated[Union[SurfaceAnalysis, HessianAnalysis, ExperimentsAnalysis, DlnAnalysis],
                     Field(discriminator="kind")]
ANALYSIS_KINDS = ("surface", "hessian", "experiments", "dln")
PER_MODEL = ("surface", "hessian")

#: short names of common sweep axes
AXIS_ALIASES = {"seeds": "train.seed", "seed": "train.seed", "optimizers": "train.optimizer",
                "lrs": "train.lr", "learning_rates": "train.lr", "batch_sizes": "train.batch_size",
                "steps": "train.steps", "models": "model.name", "model_seeds": "model.seed",
                "widths": "model.options.hidden", "datasets": "data.name", "data_seeds": "data.seed"}


class StudySpec(_Strict):
    """A whole study: one base training configuration, sweep axes (a grid) and analyses."""

    name: Annotated[str, Field(min_length=1)] = "study"
    description: str = ""
    data: DataSpec
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    sweep: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}
    analyses: list[Analysis] = []

    @field_validator("sweep")
    @classmethod
    def _axes(cls, v):
        for k in v:
            canonical_axis(k)
        return v

    def base_config(self) -> dict:
        return {"data": self.data.model_dump(), "model": self.model.model_dump(), "train": self.train.model_dump()}

    def spec_hash(self) -> str:
        return spec_hash(self)

    def grid(self) -> list[dict[str, Any]]:
        """The sweep grid: one {axis: value} per training run (the product of the axes, in spec order)."""
        axes = list(self.sweep)
        return [dict(zip(axes, vals)) for vals in itertools.product(*(self.sweep[a] for a in axes))] or [{}]

    def configs(self) -> list[tuple[dict, "RunConfig"]]:
        """(grid point, validated RunConfig) for every training run of the study."""
        out = []
        for point in self.grid():
            cfg = self.base_config()
            for axis, val in point.items():
                _set_path(cfg, canonical_axis(axis), _axis_value(axis, val, cfg))
            out.append((point, RunConfig.model_validate(cfg)))
        return out


class RunConfig(_Strict):
    """One expanded training run of a study."""

    data: DataSpec
    model: ModelSpec
    train: TrainSpec


_SECTIONS = {"data": DataSpec, "model": ModelSpec, "train": TrainSpec}
_OPEN_DICTS = {("data", "options"), ("model", "options"), ("train", "optimizer_options"), ("train", "schedule_options")}


def canonical_axis(axis: str) -> str:
    """A sweep axis as a dotted path: aliases resolved, the path checked against the spec's fields."""
    path = AXIS_ALIASES.get(axis, axis)
    parts = path.split(".")
    if parts[0] not in _SECTIONS or len(parts) < 2:
        raise ValueError(f"unknown sweep axis {axis!r}: use an alias ({', '.join(sorted(AXIS_ALIASES))}) or a "
                         f"dotted path into data/model/train such as 'train.lr' or 'model.options.hidden'")
    section = _SECTIONS[parts[0]]
    if parts[1] not in section.model_fields:
        raise ValueError(f"unknown sweep axis {axis!r}: {parts[0]} has no field {parts[1]!r}; valid fields: "
                         f"{', '.join(section.model_fields)}")
    if len(parts) > 2 and (parts[0], parts[1]) not in _OPEN_DICTS:
        raise ValueError(f"unknown sweep axis {axis!r}: {parts[0]}.{parts[1]} has no sub-fields")
    if len(parts) == 2 and (parts[0], parts[1]) in _OPEN_DICTS:
        raise ValueError(f"sweep axis {axis!r} must name one option, e.g. '{path}.NAME'")
    return path


def _axis_value(axis: str, val, cfg: dict):
    """``widths = [8, 16]`` means hidden=[8] / hidden=[16] for an MLP and widths=... for a deep linear net."""
    if axis == "widths":
        if cfg["model"]["name"].replace("-", "_").lower() == "deep_linear":
            return val
        return [val] if isinstance(val, int) else val
    return val


def _set_path(cfg: dict, path: str, value) -> None:
    parts = path.split(".")
    if parts[0] == "model" and parts[1] == "options" and parts[2] == "hidden" and cfg["model"]["name"] == "deep_linear":
        parts[2] = "widths"
    d = cfg
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


def _canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def spec_hash(spec: StudySpec) -> str:
    """sha256 of the validated spec (defaults filled in), so formatting and key order do not matter."""
    return hashlib.sha256(_canonical_json(spec.model_dump(mode="json")).encode()).hexdigest()


# ---------------------------------------------------------------------------------------
# errors: one line, FILE: FIELD: message


def _field_type(model, name):
    f = model.model_fields.get(name)
    return None if f is None else f.annotation


def _unwrap(tp):
    """Strip Optional/Annotated; return (origin, args)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (Union, getattr(__import__("types"), "UnionType", Union)):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _model_at(loc: tuple) -> type | None:
    """The pydantic model class that a location (without its last element) points into."""
    cur: Any = StudySpec
    for part in loc:
        cur = _unwrap(cur)
        if isinstance(part, int):
            args = typing.get_args(cur)
            cur = args[0] if args else None
            continue
        if inspect.isclass(cur) and issubclass(cur, BaseModel):
            cur = _field_type(cur, part)
            continue
        # a discriminated union member named by its tag
        members = typing.get_args(_unwrap(cur)) if cur is not None else ()
        match = [m for m in members if inspect.isclass(m) and issubclass(m, BaseModel)
                 and "kind" in m.model_fields and typing.get_args(m.model_fields["kind"].annotation) == (part,)]
        cur = match[0] if match else None
    cur = _unwrap(cur) if cur is not None else None
    return cur if inspect.isclass(cur) and issubclass(cur, BaseModel) else None


def _loc_str(loc: tuple) -> str:
    out = ""
    prev_int = False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            prev_int = True
            continue
        if prev_int and part in ANALYSIS_KINDS:  # the union tag pydantic adds after analyses[i]
            prev_int = False
            continue
        if part in ("function-after", "function-before") or str(part).startswith("function-"):
            continue
        out += ("." if out else "") + str(part)
        prev_int = False
    return out or "(top level)"


_TYPE_NAMES = {"float_type": "a number", "int_type": "an integer", "string_type": "a string", "bool_type": "true or false",
               "list_type": "a list", "dict_type": "a table", "model_type": "a table", "int_from_float": "an integer",
               "float_parsing": "a number", "int_parsing": "an integer", "model_attributes_type": "a table",
               "none_required": "nothing"}


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def _describe(err: dict) -> str:
    t, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    gotr = repr(got) if not isinstance(got, (dict, list)) or len(repr(got)) < 60 else type(got).__name__
    if t == "greater_than":
        return f"must be > {_num(ctx['gt'])} (got {gotr})"
    if t == "greater_than_equal":
        return f"must be >= {_num(ctx['ge'])} (got {gotr})"
    if t == "less_than":
        return f"must be < {_num(ctx['lt'])} (got {gotr})"
    if t == "less_than_equal":
        return f"must be <= {_num(ctx['le'])} (got {gotr})"
    if t == "finite_number":
        return f"must be a finite number (got {gotr})"
    if t == "missing":
        return "required field is missing"
    if t == "extra_forbidden":
        parent = _model_at(tuple(err["loc"][:-1]))
        valid = f"; valid keys: {', '.join(parent.model_fields)}" if parent is not None else ""
        return f"unknown key{valid}"
    if t == "too_short":
        if isinstance(got, list) and not got:
            return "must not be empty (an empty list gives nothing to run)"
        return f"needs at least {ctx.get('min_length')} item(s) (got {gotr})"
    if t == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {gotr})"
    if t in ("union_tag_invalid", "union_tag_not_found"):
        return f"analysis kind must be one of {', '.join(ANALYSIS_KINDS)} (got {ctx.get('tag', got)!r})"
    if t == "value_error":
        msg = str(ctx.get("error", err["msg"]))
        return msg
    if t in _TYPE_NAMES:
        return f"expected {_TYPE_NAMES[t]} (got {type(got).__name__} {gotr})"
    msg = err["msg"]
    return f"{msg[0].lower()}{msg[1:]} (got {gotr})"


def format_validation_error(e: ValidationError, source: str, prefix: str = "") -> str:
    """One line: ``SOURCE: FIELD: message`` (the first error; a count of the others)."""
    errs = e.errors(include_url=False)
    parts = []
    for err in errs[:3]:
        loc = _loc_str(tuple(err["loc"]))
        loc = f"{prefix}{'.' if prefix and loc != '(top level)' else ''}{loc}" if prefix else loc
        parts.append(f"{loc}: {_describe(err)}")
    more = f" (and {len(errs) - 3} more)" if len(errs) > 3 else ""
    return f"{source}: " + "; ".join(parts) + more


def validate_spec(obj: dict, *, source: str = "<spec>") -> StudySpec:
    """Validate a spec given as a dict; raise SpecError (one line) when it is wrong. Every value of
    every sweep axis is checked in place (``sweep.train.lr[1]: must be > 0 (got -0.1)``)."""
    if not isinstance(obj, dict):
        raise SpecError(f"{source}: a spec must be a table of sections (data, model, train, sweep, analyses)")
    try:
        spec = StudySpec.model_validate(obj)
    except ValidationError as e:
        raise SpecError(format_validation_error(e, source)) from None
    base = spec.base_config()
    for axis, values in spec.sweep.items():
        path = canonical_axis(axis)
        for i, val in enumerate(values):
            cfg = copy.deepcopy(base)
            _set_path(cfg, path, _axis_value(axis, val, cfg))
            try:
                RunConfig.model_validate(cfg)
            except ValidationError as e:
                err = e.errors(include_url=False)[0]
                raise SpecError(f"{source}: sweep.{axis}[{i}]: {_describe(err)} "
                                f"(as {_loc_str(tuple(err['loc']))})") from None
    return spec


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a TOML study spec; errors are one-line SpecErrors naming file and field."""
    p = Path(path)
    if not p.exists():
        raise SpecError(f"{p}: no such spec file (pass a TOML study spec; `losslab run` alone runs the default study)")
    if p.is_dir():
        raise SpecError(f"{p}: is a folder, not a TOML spec file")
    try:
        obj = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{p}: invalid TOML ({e})") from None
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not a text file (expected a TOML study spec)") from None
    return validate_spec(obj, source=p.name)


def default_spec_path() -> Path:
    """The built-in default study (``losslab run`` with no spec)."""
    return Path(__file__).resolve().parent.parent / "studies" / "default.toml"


def load_default_spec() -> StudySpec:
    return load_spec(default_spec_path())
