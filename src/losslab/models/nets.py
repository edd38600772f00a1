"""The built-in network classes."""
from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


class SigmoidNeuron(nn.Module):
    def __init__(self, in_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, 1)

    def forward(self, x):
        return torch.sigmoid(self.linear(x))


class PolynomialRegression(nn.Module):
    """sum_{k=0}^{degree} a_k x^k for scalar inputs x of shape (N, 1) or (N,)."""

    def __init__(self, degree: int, out_dim: int = 1):
        super().__init__()
        if degree < 0:
            raise ValueError(f"polynomial degree must be >= 0, got {degree}")
        self.degree = degree
        self.linear = nn.Linear(degree + 1, out_dim, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != 1:
            raise ValueError(f"polynomial model takes one input feature, got {x.shape[1]}")
        return x ** torch.arange(self.degree + 1, device=x.device, dtype=x.dtype)  # (N, degree+1)

    def forward(self, x):
        return self.linear(self.features(x))


class MLP(nn.Module):
    def __init__(self, in_dim: int, hidden: list[int], out_dim: int, *, activation: str = "tanh",
                 dropout: float = 0.0, batch_norm: bool = False, bias: bool = True):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(sorted(ACTIVATIONS))}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers.append(nn.Linear(d, h, bias=bias))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = h
        layers.append(nn.Linear(d, out_dim, bias=bias))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x.reshape(x.shape[0], -1))


class DeepLinear(nn.Module):
    """X = W_N ... W_1 with W_p of shape (d_p, d_{p-1}); no biases. ``layers[p-1]`` holds W_p."""

    def __init__(self, widths: list[int]):
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"deep_linear needs at least two widths (d_0, d_1), got {widths}")
        self.widths = list(widths)
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(widths[:-1], widths[1:]))

    @property
    def depth(self) -> int:
        return len(self.layers)

    def weights(self) -> list[torch.Tensor]:
        return [l.weight for l in self.layers]

    def end_to_end(self) -> torch.Tensor:
        X = self.layers[0].weight
        for l in self.layers[1:]:
            X = l.weight @ X
        return X

    def forward(self, x):
        for l in self.layers:
            x = l(x)
        return x


class SequenceModel(nn.Module):
    """A tanh RNN or an LSTM unrolled step by step (so each hidden state h_k can be inspected),
    with a linear read-out of the last hidden state. Input (N, T, in_dim) -> (N, out_dim)."""

    def __init__(self, cell: str, in_dim: int, hidden: int, out_dim: int, *, forget_bias: float = 0.0):
        super().__init__()
        if cell not in ("rnn", "lstm"):
            raise ValueError(f"cell must be 'rnn' or 'lstm', got {cell!r}")
        self.kind, self.hidden_size = cell, hidden
        self.cell = nn.RNNCell(in_dim, hidden, nonlinearity="tanh") if cell == "rnn" else nn.LSTMCell(in_dim, hidden)
        self.readout = nn.Linear(hidden, out_dim)
        self.forget_bias = forget_bias
        self.reset_forget_bias()

    def reset_forget_bias(self) -> None:
        if self.kind == "lstm":
            with torch.no_grad():  # gate order in torch: input, forget, cell, output
                h = self.hidden_size
                self.cell.bias_ih[h:2 * h].fill_(self.forget_bias)
                self.cell.bias_hh[h:2 * h].zero_()

    def forward_states(self, x: torch.Tensor, states_hook=None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the sequence; returns (output, [h_1..h_T]). ``states_hook(k, h)`` may replace h_k
        (used to measure dL/dh_k by adding a zero tensor that requires grad)."""
        if x.dim() != 3:
            raise ValueError(f"sequence models take (N, T, features) input, got shape {tuple(x.shape)}")
        n, t, _ = x.shape
        h = x.new_zeros(n, self.hidden_size)
        c = x.new_zeros(n, self.hidden_size) if self.kind == "lstm" else None
        hs = []
        for k in range(t):
            if self.kind == "lstm":
                h, c = self.cell(x[:, k], (h, c))
            else:
                h = self.cell(x[:, k], h)
            if states_hook is not None:
                h = states_hook(k, h)
            hs.append(h)
        return self.readout(h), hs

    def forward(self, x):
        return self.forward_states(x)[0]
