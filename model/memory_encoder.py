"""Memory encoder: fuses a frame's features with its predicted mask into a compact memory."""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import DropPath, LayerNorm2d, clone_modules


class MaskDownSampler(nn.Module):
    """Shrinks a mask by `total_stride` in conv steps of `stride`, widening channels by stride² each step."""

    def __init__(
        self,
        embed_dim: int = 256,
        kernel_size: int = 4,
        stride: int = 4,
        padding: int = 0,
        total_stride: int = 16,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        num_steps = round(math.log(total_stride, stride))
        if stride**num_steps != total_stride:
            raise ValueError(f"total_stride {total_stride} is not a power of stride {stride}")
        self.encoder = nn.Sequential()
        channels = 1
        for _ in range(num_steps):
            wider = channels * stride**2
            self.encoder.extend(
                [
                    nn.Conv2d(channels, wider, kernel_size=kernel_size, stride=stride, padding=padding),
                    LayerNorm2d(wider),
                    activation(),
                ]
            )
            channels = wider
        self.encoder.append(nn.Conv2d(channels, embed_dim, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) mask -> (B, embed_dim, H / total_stride, W / total_stride)."""
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise conv, layer norm, 4x pointwise MLP, layer scale `gamma`, residual."""

    def __init__(
        self,
        dim: int,
        kernel_size: int = 7,
        padding: int = 3,
        drop_path: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        use_dwconv: bool = True,
    ) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=padding, groups=dim if use_dwconv else 1)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init_value)) if layer_scale_init_value > 0 else None
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim, H, W) -> same shape."""
        branch = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        branch = self.pwconv2(self.act(self.pwconv1(branch)))
        if self.gamma is not None:
            branch = self.gamma * branch
        return x + self.drop_path(branch.permute(0, 3, 1, 2))


class Fuser(nn.Module):
    """An optional 1x1 input projection followed by `num_layers` copies of `layer`."""

    def __init__(self, layer: nn.Module, num_layers: int, dim: int | None = None, input_projection: bool = False):
        super().__init__()
        if input_projection and dim is None:
            raise ValueError("Fuser with input_projection needs its channel count dim")
        self.proj = nn.Conv2d(dim, dim, kernel_size=1) if input_projection else nn.Identity()
        self.layers = clone_modules(layer, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Adds the downsampled mask to projected frame features, fuses them and projects to `out_dim` channels."""

    def __init__(
        self,
        out_dim: int,
        mask_downsampler: nn.Module,
        fuser: nn.Module,
        position_encoding: nn.Module,
        in_dim: int = 256,
    ) -> None:
        super().__init__()
        self.mask_downsampler = mask_downsampler
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = fuser
        self.position_encoding = position_encoding
        self.out_proj = nn.Conv2d(in_dim, out_dim, kernel_size=1) if out_dim != in_dim else nn.Identity()

    def forward(
        self, pix_feat: torch.Tensor, masks: torch.Tensor, skip_mask_sigmoid: bool = False
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Frame features (B, in_dim, h, w) and mask logits (B, 1, 16h, 16w) -> memory features and encoding.

        Features of batch 1 are shared by all B masks (one projection for every object of a frame). Returns
        {"vision_features": (B, out_dim, h, w), "vision_pos_enc": [(B, out_dim, h, w)]}. With `skip_mask_sigmoid`
        the masks are taken as probabilities already.
        """
        if not skip_mask_sigmoid:
            masks = torch.sigmoid(masks)
        masks = self.mask_downsampler(masks)
        x = self.pix_feat_proj(pix_feat.to(masks.device)) + masks
        x = self.out_proj(self.fuser(x))
        return {"vision_features": x, "vision_pos_enc": [self.position_encoding(x).to(x.dtype)]}
