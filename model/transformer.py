"""Multi-head attention (plain and rotary) and the two-way transformer of the SAM mask decoder."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP
from .rope import AxialRope

ATTENTION_WEIGHTS_PER_BLOCK = 2**22
"""Attention weights computed at once on the CPU path (16 MB in float32; larger blocks measured slower)."""


class Attention(nn.Module):
    """Multi-head attention whose q/k/v projections may shrink the width by `downsample_rate`."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.kv_in_dim = embedding_dim if kv_in_dim is None else kv_in_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(f"{num_heads} heads do not divide the attention width {self.internal_dim}")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)
        self.dropout_p = dropout

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attend from q (B, Nq, C) to k/v (B, Nk, C_kv); returns (B, Nq, C)."""
        return self._attend(self._split_heads(self.q_proj(q)), self._split_heads(self.k_proj(k)), v)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, heads * D) -> (B, heads, N, D)."""
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention of projected, split q and k (B, heads, N, D) over the unprojected values v (B, Nk, C_kv).

        Queries of batch 1 are shared by every batch element of k and v.
        """
        q = q.expand(k.shape[0], -1, -1, -1)
        if self._projects_values_after_weighting(q):
            # The weights of each query sum to 1, so weighting then projecting equals projecting then weighting,
            # and it multiplies the weights by C_kv-wide rather than D-wide values.
            weighted = attention_in_blocks(q, k, v.unsqueeze(1))
            return self.out_proj(self.v_proj(weighted.squeeze(1)))
        dropout_p = self.dropout_p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, self._split_heads(self.v_proj(v)), dropout_p=dropout_p)
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def _projects_values_after_weighting(self, q: torch.Tensor) -> bool:
        """On CPU, one head over values narrower than it (memory attention) is cheaper weighted first."""
        dropout = self.training and self.dropout_p > 0
        narrow_values = self.num_heads == 1 and self.kv_in_dim < self.internal_dim
        return narrow_values and q.device.type == "cpu" and not dropout


def attention_in_blocks(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)) v of (..., N, D) tensors, for one batch element and a block of queries at a time.

    Holds at most ATTENTION_WEIGHTS_PER_BLOCK weights: on CPU this beats SDPA, whose values must be as wide as q.
    """
    rows = max(1, ATTENTION_WEIGHTS_PER_BLOCK // k.shape[-2])
    scaled_queries = q * q.shape[-1] ** -0.5
    outputs = []
    for queries, keys, values in zip(scaled_queries.flatten(0, -3), k.flatten(0, -3), v.flatten(0, -3)):
        keys_transposed = keys.transpose(0, 1)
        blocks = [torch.softmax(block @ keys_transposed, dim=-1) @ values for block in queries.split(rows)]
        outputs.append(torch.cat(blocks))
    return torch.stack(outputs).unflatten(0, q.shape[:-2])


class RoPEAttention(Attention):
    """Attention over a feature grid with axial rotary position encoding of queries and keys.

    `feat_sizes` (width, height) is the grid assumed when the query count matches it; any other query count must
    be a square grid. With `rope_k_repeat` the keys may hold several grids (memory frames), each encoded like the
    queries, followed by `num_k_exclude_rope` tokens (object pointers) that get no rotation.
    """

    def __init__(
        self,
        *args,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
        feat_sizes: tuple[int, int] = (64, 64),
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.rope = AxialRope(self.internal_dim // self.num_heads, theta=rope_theta)
        self.rope_k_repeat = rope_k_repeat
        self.feat_sizes = tuple(feat_sizes)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_k_exclude_rope: int = 0) -> torch.Tensor:
        """Attend from grid tokens q (B, HW, C) to k/v (B, Nk, C_kv)."""
        q, k = self._split_heads(self.q_proj(q)), self._split_heads(self.k_proj(k))
        q, k = self.rope.rotate_queries_and_keys(
            q, k, self._grid_size(q.shape[-2]), num_k_exclude=num_k_exclude_rope, repeat_k=self.rope_k_repeat
        )
        return self._attend(q, k, v)

    def _grid_size(self, num_tokens: int) -> tuple[int, int]:
        if num_tokens == self.feat_sizes[0] * self.feat_sizes[1]:
            return self.feat_sizes
        side = math.isqrt(num_tokens)
        if side * side != num_tokens:
            raise ValueError(
                f"RoPE attention got {num_tokens} query tokens, neither feat_sizes {self.feat_sizes} nor a square "
                "grid: pass the feature map's (width, height) as feat_sizes"
            )
        return side, side


class TwoWayAttentionBlock(nn.Module):
    """Prompt tokens attend to themselves and to the image, then the image attends back to the tokens."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int = 2048,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, num_layers=2, activation=activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Update prompt tokens `queries` (B, Nq, C) and image tokens `keys` (B, HW, C)."""
        if self.skip_first_layer_pe:
            # The first block replaces the tokens by their self-attention: they still equal their encoding.
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        keys_with_pe = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, keys_with_pe, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(keys_with_pe, queries + query_pe, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """`depth` two-way blocks then a last token-to-image attention: SAM's decoder transformer."""

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim=embedding_dim,
                num_heads=num_heads,
                mlp_dim=mlp_dim,
                activation=activation,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=index == 0,
            )
            for index in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run prompt tokens (B, N, C) against an image (B, C, H, W) and its encoding (B or 1, C, H, W).

        Returns the updated tokens (B, N, C) and image tokens (B, HW, C).
        """
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries=queries, keys=keys, query_pe=point_embedding, key_pe=key_pe)
        attended = self.final_attn_token_to_image(queries + point_embedding, keys + key_pe, keys)
        return self.norm_final_attn(queries + attended), keys
