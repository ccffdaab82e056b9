"""Position encodings: 2D sine (FPN neck, memory encoder), random Fourier (prompt encoder), 1D sine (pointers)."""

from __future__ import annotations

import math

import torch
from torch import nn


def _sine_wavelengths(num_feats: int, temperature: float, device: torch.device) -> torch.Tensor:
    """Transformer-style wavelengths temperature^(2k/num_feats) for k < num_feats/2 (one per sin/cos pair)."""
    pair_index = torch.arange(num_feats // 2, dtype=torch.float32, device=device)
    return temperature ** (2 * pair_index / num_feats)


def _interleaved_sin_cos(angles: torch.Tensor) -> torch.Tensor:
    """[..., n] angles -> [..., 2n] as sin(a0), cos(a0), sin(a1), cos(a1), ..."""
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


def sine_encoding_1d(positions: torch.Tensor, dim: int, temperature: float = 10000) -> torch.Tensor:
    """[...] positions -> [..., dim]: all sines, then all cosines (the object-pointer temporal encoding)."""
    half = dim // 2
    pair_index = torch.arange(half, dtype=torch.float32, device=positions.device) // 2
    wavelengths = temperature ** (2 * pair_index / half)
    angles = positions.unsqueeze(-1) / wavelengths
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class PositionEmbeddingSine(nn.Module):
    """2D sine encoding of a feature map's grid: forward((B, *, H, W) tensor) -> (B, num_pos_feats, H, W).

    The first half of the channels encodes the row, the second half the column; positions are normalized to
    (0, scale] when `normalize` is set. Encodings are cached per grid size and device.
    """

    def __init__(
        self,
        num_pos_feats: int,
        temperature: int = 10000,
        normalize: bool = True,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"PositionEmbeddingSine needs an even num_pos_feats, got {num_pos_feats}")
        if scale is not None and not normalize:
            raise ValueError("PositionEmbeddingSine: a scale only applies with normalize=True")
        self.num_pos_feats = num_pos_feats // 2
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale
        self._cache: dict[tuple[int, int, torch.device], torch.Tensor] = {}

    def _axis_positions(self, length: int, device: torch.device) -> torch.Tensor:
        positions = torch.arange(1, length + 1, dtype=torch.float32, device=device)
        if self.normalize:
            positions = positions / (positions[-1:] + 1e-6) * self.scale
        return positions

    def _grid_encoding(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        key = (height, width, device)
        if key not in self._cache:
            wavelengths = _sine_wavelengths(self.num_pos_feats, self.temperature, device)
            rows = _interleaved_sin_cos(self._axis_positions(height, device)[:, None] / wavelengths)
            cols = _interleaved_sin_cos(self._axis_positions(width, device)[:, None] / wavelengths)
            grid = torch.cat([rows[:, None, :].expand(-1, width, -1), cols[None, :, :].expand(height, -1, -1)], -1)
            self._cache[key] = grid.permute(2, 0, 1).contiguous()
        return self._cache[key]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(x).clone()

    @torch.no_grad()
    def shared(self, x: torch.Tensor) -> torch.Tensor:
        """The encoding as a view of the cache, without a copy: for callers that never write into it."""
        encoding = self._grid_encoding(x.shape[-2], x.shape[-1], x.device)
        return encoding.unsqueeze(0).expand(x.shape[0], -1, -1, -1)


class PositionEmbeddingRandom(nn.Module):
    """Encoding by random spatial frequencies (buffer `positional_encoding_gaussian_matrix`, shape (2, C/2))."""

    def __init__(self, num_pos_feats: int = 64, scale: float | None = None) -> None:
        super().__init__()
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats)))

    def _encode_unit_coords(self, coords: torch.Tensor) -> torch.Tensor:
        """[..., 2] x,y in [0, 1] -> [..., 2 * num_pos_feats]."""
        angles = math.tau * ((2 * coords - 1) @ self.positional_encoding_gaussian_matrix)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """Encoding of every pixel centre of an (h, w) grid -> (C, h, w)."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self._encode_unit_coords(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords_input: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """(B, N, 2) pixel x,y in an image of `image_size` (h, w) -> (B, N, C)."""
        h, w = image_size
        unit = coords_input.to(torch.float) / coords_input.new_tensor([w, h], dtype=torch.float)
        return self._encode_unit_coords(unit)
