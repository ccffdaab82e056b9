"""SAM prompt encoder: clicks and boxes to sparse tokens, a low-resolution mask to a dense embedding."""

from __future__ import annotations

import torch
from torch import nn

from .common import LayerNorm2d
from .position_encoding import PositionEmbeddingRandom

PADDING_LABEL = -1
"""Point label of a padding token (no point): embedded as `not_a_point_embed` alone."""


class PromptEncoder(nn.Module):
    """Embeds points, boxes and masks for the mask decoder.

    Point labels: 0 negative click, 1 positive click, 2 box top-left corner, 3 box bottom-right corner, -1 padding.
    Coordinates are pixels of the `input_image_size` (h, w) model input.
    """

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = input_image_size
        self.image_embedding_size = image_embedding_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.num_point_embeddings = 4
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(self.num_point_embeddings))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            activation(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            activation(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image embedding grid, (1, embed_dim, h, w)."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """(B, N, 2) pixel points and (B, N) labels -> (B, N [+1 padding token], C)."""
        if pad:
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), PADDING_LABEL)], dim=1)
        # + 0.5: a pixel's coordinate is its centre.
        encoding = self.pe_layer.forward_with_coords(points + 0.5, self.input_image_size)
        label_table = torch.cat([embedding.weight for embedding in self.point_embeddings])
        is_known_label = (labels >= 0) & (labels < self.num_point_embeddings)
        label_embedding = label_table[labels.clamp(0, self.num_point_embeddings - 1)] * is_known_label.unsqueeze(-1)
        is_padding = (labels == PADDING_LABEL).unsqueeze(-1)
        return torch.where(is_padding, self.not_a_point_embed.weight, encoding + label_embedding)

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """(B, 4) pixel boxes x0, y0, x1, y1 -> (B, 2, C) corner tokens."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        encoding = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_embeddings = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])
        return encoding + corner_embeddings

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse tokens (B, N, C) of points then box corners, and the dense embedding (B, C, h, w).

        Points are padded with one padding token when no box is given; without a mask the dense embedding is the
        learned `no_mask_embed` everywhere; masks are (B, 1, 4h, 4w) logits.
        """
        prompts = (points[0] if points is not None else None, boxes, masks)
        batch = next((prompt.shape[0] for prompt in prompts if prompt is not None), 1)
        sparse = [torch.empty(batch, 0, self.embed_dim, device=self.no_mask_embed.weight.device)]
        if points is not None:
            sparse.append(self._embed_points(*points, pad=boxes is None))
        if boxes is not None:
            sparse.append(self._embed_boxes(boxes))
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, *self.image_embedding_size)
        return torch.cat(sparse, dim=1), dense
