"""Small building blocks shared by every part of the SAM 2 network."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "glu": F.glu,
}


def activation_by_name(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The functional activation a config names ("relu", "gelu" or "glu")."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}: use one of {sorted(_ACTIVATIONS)}") from None


def clone_modules(module: nn.Module, count: int) -> nn.ModuleList:
    """`count` independent deep copies of `module` (state-dict keys `0.*`, `1.*`, ...)."""
    return nn.ModuleList(copy.deepcopy(module) for _ in range(count))


class MLP(nn.Module):
    """Stack of `num_layers` linear layers with an activation between them (state-dict keys `layers.N.*`)."""

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        activation: type[nn.Module] = nn.ReLU,
        sigmoid_output: bool = False,
    ) -> None:
        super().__init__()
        widths = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.num_layers = num_layers
        self.layers = nn.ModuleList(nn.Linear(d_in, d_out) for d_in, d_out in zip(widths[:-1], widths[1:]))
        self.act = activation()
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *hidden, last = self.layers
        for layer in hidden:
            x = self.act(layer(x))
        x = last(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class LayerNorm2d(nn.Module):
    """Layer norm over the channel axis of a (B, C, H, W) tensor."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        centered = x - mean
        variance = centered.pow(2).mean(1, keepdim=True)
        normalized = centered / torch.sqrt(variance + self.eps)
        return normalized * self.weight[:, None, None] + self.bias[:, None, None]


class DropPath(nn.Module):
    """Stochastic depth: while training, zero whole samples of a residual branch with probability `drop_prob`."""

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True) -> None:
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep_prob = 1.0 - self.drop_prob
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep_prob)
        if self.scale_by_keep and keep_prob > 0.0:
            keep = keep / keep_prob
        return x * keep
