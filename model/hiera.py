"""Hiera trunk: a hierarchical ViT with windowed/global attention, q-pooling and windowed position embeddings."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP, DropPath


def pool_channels_last(x: torch.Tensor, pool: nn.Module | None) -> torch.Tensor:
    """Apply a 2D pooling module to a (B, H, W, C) tensor; None leaves it as is."""
    if pool is None:
        return x
    return pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * windows, window, window, C), zero-padding H and W up to multiples of `window`.

    Returns the windows and the padded (H, W).
    """
    batch, height, width, channels = x.shape
    pad_h, pad_w = -height % window, -width % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    padded = (height + pad_h, width + pad_w)
    rows, cols = padded[0] // window, padded[1] // window
    windows = x.view(batch, rows, window, cols, window, channels).transpose(2, 3)
    return windows.reshape(batch * rows * cols, window, window, channels), padded


def window_unpartition(
    windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of `window_partition`: (B * windows, window, window, C) -> (B, H, W, C) without the padding."""
    rows, cols = padded[0] // window, padded[1] // window
    batch = windows.shape[0] // (rows * cols)
    x = windows.view(batch, rows, cols, window, window, -1).transpose(2, 3).reshape(batch, *padded, -1)
    return x[:, : size[0], : size[1]]


class PatchEmbed(nn.Module):
    """Strided convolution from an image (B, C, H, W) to patch tokens (B, H', W', embed_dim)."""

    def __init__(
        self,
        kernel_size: tuple[int, int] = (7, 7),
        stride: tuple[int, int] = (4, 4),
        padding: tuple[int, int] = (3, 3),
        in_chans: int = 3,
        embed_dim: int = 768,
    ) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Multi-head self-attention on (B, H, W, C) tokens whose queries may be pooled to a coarser grid."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_pool: nn.Module | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.dim_out = dim_out
        self.num_heads = num_heads
        self.q_pool = q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        head_dim = self.dim_out // self.num_heads
        qkv = self.qkv(x)
        q, k, v = qkv.view(batch, height * width, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        if self.q_pool is not None:
            q_grid = q.transpose(1, 2).reshape(batch, height, width, self.dim_out)
            q_grid = pool_channels_last(q_grid, self.q_pool)
            height, width = q_grid.shape[1:3]
            q = q_grid.reshape(batch, height * width, self.num_heads, head_dim).transpose(1, 2)
        x = F.scaled_dot_product_attention(q, k, v)
        x = x.transpose(1, 2).reshape(batch, height, width, self.dim_out)
        return self.proj(x)


class MultiScaleBlock(nn.Module):
    """Transformer block of the trunk: (windowed) attention, optional q-pooling and width change, then an MLP."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        norm_layer: type[nn.Module] | str = "LayerNorm",
        q_stride: tuple[int, int] | None = None,
        act_layer: type[nn.Module] = nn.GELU,
        window_size: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(norm_layer, str):
            norm_layer = partial(getattr(nn, norm_layer), eps=1e-6)
        self.dim = dim
        self.dim_out = dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.pool = nn.MaxPool2d(kernel_size=q_stride, stride=q_stride) if q_stride else None
        self.norm1 = norm_layer(dim)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads=num_heads, q_pool=self.pool)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim_out)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, num_layers=2, activation=act_layer)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm1(x)
        shortcut = pool_channels_last(self.proj(normed), self.pool) if self.dim != self.dim_out else x
        if self.window_size > 0:
            windows, padded = window_partition(normed, self.window_size)
            attended = self.attn(windows)
            out_window = attended.shape[1]  # smaller than window_size after q-pooling
            rows, cols = padded[0] // self.window_size, padded[1] // self.window_size
            out_padded = (rows * out_window, cols * out_window)
            attended = window_unpartition(attended, out_window, out_padded, shortcut.shape[1:3])
        else:
            attended = self.attn(normed)
        x = shortcut + self.drop_path(attended)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Hiera(nn.Module):
    """Hiera trunk (https://arxiv.org/abs/2306.00989): image (B, 3, H, W) -> per-stage (B, C_s, H_s, W_s) features.

    Returns the output of every stage (high resolution first) when `return_interm_layers`, else only the last;
    `channel_list` gives their widths lowest resolution first, as the FPN neck expects them.
    """

    def __init__(
        self,
        embed_dim: int = 96,
        num_heads: int = 1,
        drop_path_rate: float = 0.0,
        q_pool: int = 3,
        q_stride: tuple[int, int] = (2, 2),
        stages: tuple[int, ...] = (2, 3, 16, 3),
        dim_mul: float = 2.0,
        head_mul: float = 2.0,
        window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14),
        window_spec: tuple[int, ...] = (8, 4, 14, 7),
        global_att_blocks: tuple[int, ...] | None = (12, 16, 20),
        return_interm_layers: bool = True,
    ) -> None:
        super().__init__()
        if len(stages) != len(window_spec):
            raise ValueError(f"Hiera: {len(stages)} stages but {len(window_spec)} window sizes in window_spec")
        if not 0 <= q_pool < len(stages):
            raise ValueError(f"Hiera: q_pool must be between 0 and {len(stages) - 1} (stage changes), got {q_pool}")
        self.window_spec = window_spec
        self.q_stride = q_stride
        self.global_att_blocks = tuple(global_att_blocks or ())
        self.return_interm_layers = return_interm_layers
        self.window_pos_embed_bkg_spatial_size = window_pos_embed_bkg_spatial_size
        stage_of_block = [stage for stage, count in enumerate(stages) for _ in range(count)]
        self.stage_ends = [sum(stages[: stage + 1]) - 1 for stage in range(len(stages))]
        stage_starts = [end + 1 for end in self.stage_ends[:-1]]
        self.q_pool_blocks = stage_starts[:q_pool]

        self.patch_embed = PatchEmbed(embed_dim=embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, window_spec[0], window_spec[0]))
        self._cached_position: tuple[tuple, torch.Tensor] | None = None

        drop_rates = torch.linspace(0, drop_path_rate, len(stage_of_block), device="cpu").tolist()
        self.blocks = nn.ModuleList()
        dim = embed_dim
        for index in range(len(stage_of_block)):
            dim_out = dim
            if index in stage_starts:
                dim_out = int(dim * dim_mul)
                num_heads = int(num_heads * head_mul)
            # a stage's first block still attends within the previous stage's windows
            window = window_spec[stage_of_block[max(index - 1, 0)]]
            self.blocks.append(
                MultiScaleBlock(
                    dim=dim,
                    dim_out=dim_out,
                    num_heads=num_heads,
                    drop_path=drop_rates[index],
                    q_stride=q_stride if index in self.q_pool_blocks else None,
                    window_size=0 if index in self.global_att_blocks else window,
                )
            )
            dim = dim_out

        returned = self.stage_ends if return_interm_layers else self.stage_ends[-1:]
        self.channel_list = [self.blocks[end].dim_out for end in reversed(returned)]

    def _position_embedding(self, height: int, width: int) -> torch.Tensor:
        """Background embedding resized to the token grid plus the window embedding tiled over it, (1, H, W, C).

        Without autograd it is kept until the grid size or the parameters (their storage or version) change.
        """
        parameters = (self.pos_embed, self.pos_embed_window)
        key = (height, width, *((p.device, p.dtype, p.data_ptr(), p._version) for p in parameters))
        if not torch.is_grad_enabled() and self._cached_position is not None and self._cached_position[0] == key:
            return self._cached_position[1]
        window = self.pos_embed_window.shape[-1]
        if height % window or width % window:
            patch = self.patch_embed.proj.stride[0]
            raise ValueError(
                f"Hiera: a {height}x{width} token grid is not a multiple of the {window}-token window; "
                f"use an image_size that is a multiple of {window * patch}"
            )
        background = F.interpolate(self.pos_embed, size=(height, width), mode="bicubic")
        tiled = self.pos_embed_window.tile(1, 1, height // window, width // window)
        embedding = (background + tiled).permute(0, 2, 3, 1)
        if not torch.is_grad_enabled():
            self._cached_position = (key, embedding)
        return embedding

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        x = (x + self._position_embedding(*x.shape[1:3])).contiguous()  # channels last from here on: no copies per op
        outputs = []
        returned = set(self.stage_ends if self.return_interm_layers else self.stage_ends[-1:])
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in returned:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
