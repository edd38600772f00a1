"""The model zoo: the architectures researchers train, as the contract every entry point meets.

Each :class:`ZooEntry` makes a small model (small enough for an exact float64 Hessian with
``torch.func.hessian``: at most a few hundred parameters) and its data, and says how losslab is
to read them: the loss, the ``output=`` selector for forwards that do not return one tensor, and
the ``batch_keys=`` of dict batches. Test modules import it (``from zoo import ZOO``) and run
each entry point over every entry against an independent reference, or assert the clear error
that the entry gets (``expected_errors``: entry point -> a regex of the message, and why).

Data are tensors (X, y), except for ``dict_io`` whose data are a list of dict batches
``{"pixels": X, "label": y}`` (what a DataLoader over a dict dataset yields).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

N_EXAMPLES = 48


@dataclass(frozen=True)
class ZooEntry:
    name: str
    make_model: Callable[[int, torch.dtype], nn.Module]   # (seed, dtype) -> model in eval mode
    make_data: Callable[[int, torch.dtype], object]       # (seed, dtype) -> (X, y) or list of dict batches
    loss: str = "cross_entropy"
    output: object = None                                 # the output= selector (None: a tensor)
    batch_keys: tuple[str, str] | None = None             # the batch_keys= of dict batches
    expected_errors: dict = field(default_factory=dict)   # entry point -> (regex, why)

    def model(self, seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
        torch.manual_seed(seed)
        return self.make_model(seed, dtype).to(dtype).eval()

    def data(self, seed: int = 0, dtype: torch.dtype = torch.float64):
        return self.make_data(seed, dtype)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(1000 + seed)


def _classes(g: torch.Generator, n: int = N_EXAMPLES, c: int = 3) -> torch.Tensor:
    return torch.randint(0, c, (n,), generator=g)


def _flat_data(seed: int, dtype, d: int = 8):
    g = _gen(seed)
    return torch.randn(N_EXAMPLES, d, generator=g, dtype=dtype), _classes(g)


def _image_data(seed: int, dtype):
    g = _gen(seed)
    return torch.randn(N_EXAMPLES, 1, 6, 6, generator=g, dtype=dtype), _classes(g)


def _token_data(seed: int, dtype):
    g = _gen(seed)
    return torch.randint(0, 11, (N_EXAMPLES, 5), generator=g), _classes(g)


def _sequence_data(seed: int, dtype):
    g = _gen(seed)
    return torch.randn(N_EXAMPLES, 4, 3, generator=g, dtype=dtype), _classes(g)


def _dict_batches(seed: int, dtype, batch: int = 16):
    X, y = _flat_data(seed, dtype)
    return [{"pixels": X[i:i + batch], "label": y[i:i + batch]} for i in range(0, N_EXAMPLES, batch)]


class ResidualCNN(nn.Module):
    """conv -> batch norm -> relu, a residual 3x3 block, global average pooling, a linear head."""

    def __init__(self, ch: int = 3, classes: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(1, ch, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(ch)
        self.head = nn.Linear(ch, classes)

    def forward(self, x):
        h = torch.relu(self.bn1(self.stem(x)))
        h = torch.relu(h + self.bn2(self.conv(h)))
        return self.head(h.mean(dim=(2, 3)))


def _cnn(seed, dtype):
    m = ResidualCNN()
    # non-trivial running statistics, as after training (eval mode uses them)
    with torch.no_grad():
        m.train()
        m(_image_data(seed, torch.float32)[0].to(next(m.parameters()).dtype))
    return m


class TinyTransformer(nn.Module):
    """Token embedding + learned positions, one post-norm encoder layer (2 heads), mean pooling, a head."""

    def __init__(self, vocab: int = 11, d: int = 8, classes: int = 3, length: int = 5):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(length, d) * 0.1)
        layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=8, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens):
        h = self.encoder(self.embed(tokens) + self.pos)
        return self.head(h.mean(dim=1))


class Recurrent(nn.Module):
    """nn.LSTM or nn.GRU (batch first), a linear head on the last hidden state."""

    def __init__(self, cell: type, inp: int = 3, hidden: int = 5, classes: int = 3):
        super().__init__()
        self.rnn = cell(inp, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class TiedFrozenUnused(nn.Module):
    """An autoencoder-style tied weight (used twice), a frozen layer, and a parameter never used."""

    def __init__(self, d: int = 8, h: int = 4, classes: int = 3):
        super().__init__()
        self.enc = nn.Linear(d, h)
        self.frozen = nn.Linear(d, d)
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(h, classes)
        self.unused = nn.Parameter(torch.randn(3))

    def forward(self, x):
        z = torch.tanh(self.enc(self.frozen(x)))
        recon = z @ self.enc.weight           # the encoder's weight again (tied decoder)
        return self.head(torch.tanh(self.enc(recon)) + z)


class DictOut(nn.Module):
    """A Hugging Face style forward: a dict with the logits and an auxiliary tensor."""

    def __init__(self, d: int = 8, h: int = 6, classes: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d, h), nn.Tanh())
        self.head = nn.Linear(h, classes)

    def forward(self, pixels):
        h = self.body(pixels)
        return {"logits": self.head(h), "hidden": h}


def _mlp(seed, dtype):
    from losslab.models import build

    return build("mlp", in_dim=8, hidden=[6], out_dim=3, activation="tanh", seed=seed)


ZOO: list[ZooEntry] = [
    ZooEntry("mlp", _mlp, _flat_data),
    ZooEntry("cnn_bn_residual", _cnn, _image_data),
    ZooEntry("transformer", lambda s, d: TinyTransformer(), _token_data),
    ZooEntry("lstm", lambda s, d: Recurrent(nn.LSTM), _sequence_data),
    ZooEntry("gru", lambda s, d: Recurrent(nn.GRU), _sequence_data),
    ZooEntry("layernorm_gelu", lambda s, d: nn.Sequential(nn.Linear(8, 6), nn.LayerNorm(6), nn.GELU(), nn.Linear(6, 3)),
             _flat_data),
    ZooEntry("tied_frozen_unused", lambda s, d: TiedFrozenUnused(), _flat_data),
    ZooEntry("dict_io", lambda s, d: DictOut(), _dict_batches, output="logits", batch_keys=("pixels", "label")),
]
ZOO_BY_NAME = {e.name: e for e in ZOO}
ZOO_IDS = [e.name for e in ZOO]


def tensors(entry: ZooEntry, seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """The entry's data as one (X, y) pair (dict batches concatenated), for references."""
    data = entry.data(seed, dtype)
    if isinstance(data, list):
        xk, yk = entry.batch_keys
        return torch.cat([b[xk] for b in data]), torch.cat([b[yk] for b in data])
    return data


def reference_forward(entry: ZooEntry, model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """The model's output tensor for inputs X, read the way ``output=`` says (a key or an index)."""
    out = model(X)
    if entry.output is None:
        return out
    if callable(entry.output):
        return entry.output(out)
    return out[entry.output]
