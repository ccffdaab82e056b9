"""Image encoder: Hiera trunk followed by an FPN neck that gives every level d_model channels and a position map."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class FpnNeck(nn.Module):
    """Feature pyramid without output convs: 1x1 lateral convs, top-down upsampling on `fpn_top_down_levels`.

    forward(trunk features, high resolution first) -> (features, position encodings), both high resolution first.
    """

    def __init__(
        self,
        position_encoding: nn.Module,
        d_model: int,
        backbone_channel_list: list[int],
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        fpn_interp_model: str = "bilinear",
        fuse_type: str = "sum",
        fpn_top_down_levels: list[int] | None = None,
    ) -> None:
        super().__init__()
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"FpnNeck: fuse_type must be 'sum' or 'avg', got {fuse_type!r}")
        self.position_encoding = position_encoding
        self.d_model = d_model
        self.backbone_channel_list = list(backbone_channel_list)
        # convs[0] projects the lowest-resolution level, as backbone_channel_list is ordered
        self.convs = nn.ModuleList(
            nn.Sequential(OrderedDict(conv=nn.Conv2d(channels, d_model, kernel_size, stride=stride, padding=padding)))
            for channels in backbone_channel_list
        )
        self.fpn_interp_model = fpn_interp_model
        self.fuse_type = fuse_type
        levels = range(len(backbone_channel_list)) if fpn_top_down_levels is None else fpn_top_down_levels
        self.fpn_top_down_levels = list(levels)

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        align_corners = None if self.fpn_interp_model == "nearest" else False
        return F.interpolate(
            x.float(), scale_factor=2.0, mode=self.fpn_interp_model, align_corners=align_corners, antialias=False
        )

    def forward(self, xs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if len(xs) != len(self.convs):
            raise ValueError(f"FpnNeck expects {len(self.convs)} trunk levels, got {len(xs)}")
        last = len(xs) - 1
        features: list[torch.Tensor] = [None] * len(xs)
        positions: list[torch.Tensor] = [None] * len(xs)
        coarser = None
        for level in range(last, -1, -1):
            fused = self.convs[last - level](xs[level])
            if coarser is not None and level in self.fpn_top_down_levels:
                fused = fused + self._upsample(coarser)
                if self.fuse_type == "avg":
                    fused = fused / 2
            features[level] = coarser = fused
            positions[level] = self.position_encoding.shared(fused).to(fused.dtype)
        return features, positions


class ImageEncoder(nn.Module):
    """Trunk + neck: image (B, 3, S, S) -> {"vision_features", "vision_pos_enc", "backbone_fpn"}.

    `scalp` drops that many of the lowest-resolution levels; "vision_features" is the coarsest level kept.
    """

    def __init__(self, trunk: nn.Module, neck: FpnNeck, scalp: int = 0) -> None:
        super().__init__()
        if list(trunk.channel_list) != list(neck.backbone_channel_list):
            raise ValueError(
                f"ImageEncoder: trunk channels {list(trunk.channel_list)} do not match the neck's "
                f"backbone_channel_list {list(neck.backbone_channel_list)}"
            )
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, sample: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        features, positions = self.neck(self.trunk(sample))
        if self.scalp > 0:
            features, positions = features[: -self.scalp], positions[: -self.scalp]
        return {"vision_features": features[-1], "vision_pos_enc": positions, "backbone_fpn": features}
