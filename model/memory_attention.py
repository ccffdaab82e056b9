"""Memory attention: the current frame's features attend to themselves and to the memory bank."""

from __future__ import annotations

import torch
from torch import nn

from .common import activation_by_name, clone_modules
from .transformer import RoPEAttention

FEED_FORWARD_ROWS = 1024
"""Tokens per feed-forward chunk at inference: the (rows, dim_feedforward) hidden activations stay in the CPU cache."""


class MemoryAttentionLayer(nn.Module):
    """Pre-norm block: self-attention, cross-attention to the memories, feed-forward; each one residual."""

    def __init__(
        self,
        activation: str,
        cross_attention: nn.Module,
        d_model: int,
        dim_feedforward: int,
        dropout: float,
        pos_enc_at_attn: bool,
        pos_enc_at_cross_attn_keys: bool,
        pos_enc_at_cross_attn_queries: bool,
        self_attention: nn.Module,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.dim_feedforward = dim_feedforward
        self.self_attn = self_attention
        self.cross_attn_image = cross_attention
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = activation_by_name(activation)
        self.pos_enc_at_attn = pos_enc_at_attn
        self.pos_enc_at_cross_attn_queries = pos_enc_at_cross_attn_queries
        self.pos_enc_at_cross_attn_keys = pos_enc_at_cross_attn_keys

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        pos: torch.Tensor | None = None,
        query_pos: torch.Tensor | None = None,
        num_k_exclude_rope: int = 0,
    ) -> torch.Tensor:
        """Update frame tokens `tgt` (B, HW, C) from `memory` (B, N, C_mem) with encodings `query_pos`/`pos`.

        The last `num_k_exclude_rope` memory tokens (object pointers) get no rotary encoding.
        """
        normed = self.norm1(tgt)
        q = normed + query_pos if self.pos_enc_at_attn else normed
        tgt = tgt + self.dropout(self.self_attn(q, q, normed))

        normed = self.norm2(tgt)
        q = normed + query_pos if self.pos_enc_at_cross_attn_queries else normed
        k = memory + pos if self.pos_enc_at_cross_attn_keys else memory
        tgt = tgt + self.dropout(self._cross_attend(q, k, memory, num_k_exclude_rope))

        return tgt + self.dropout(self._feed_forward(self.norm3(tgt)))

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.linear2(self.dropout(self.activation(self.linear1(x))))
        rows = x.reshape(-1, x.shape[-1])
        chunks = [self.linear2(self.activation(self.linear1(chunk))) for chunk in rows.split(FEED_FORWARD_ROWS)]
        return torch.cat(chunks).view(x.shape)

    def _cross_attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_k_exclude_rope: int) -> torch.Tensor:
        if isinstance(self.cross_attn_image, RoPEAttention):
            return self.cross_attn_image(q, k, v, num_k_exclude_rope=num_k_exclude_rope)
        if num_k_exclude_rope:
            raise ValueError("num_k_exclude_rope only applies to a RoPEAttention cross-attention")
        return self.cross_attn_image(q, k, v)


class MemoryAttention(nn.Module):
    """`num_layers` copies of `layer` and a final layer norm, conditioning frame features on the memory bank."""

    def __init__(
        self,
        d_model: int,
        pos_enc_at_input: bool,
        layer: nn.Module,
        num_layers: int,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.layers = clone_modules(layer, num_layers)
        self.num_layers = num_layers
        self.norm = nn.LayerNorm(d_model)
        self.pos_enc_at_input = pos_enc_at_input
        self.batch_first = batch_first

    def forward(
        self,
        curr: torch.Tensor | list[torch.Tensor],
        memory: torch.Tensor,
        curr_pos: torch.Tensor | list[torch.Tensor] | None = None,
        memory_pos: torch.Tensor | None = None,
        num_obj_ptr_tokens: int = 0,
    ) -> torch.Tensor:
        """Sequence-first in and out: frame tokens `curr` (HW, B, C), memories `memory` (N, B, C_mem).

        `curr`/`curr_pos` may be one-element lists (one feature level). Each batch element (object) attends only
        to its own memories; the last `num_obj_ptr_tokens` memory tokens are object pointers. A `curr` of batch 1
        is one frame for all B objects: what comes before its first cross-attention then runs once.
        """
        if isinstance(curr, list):
            if len(curr) != 1 or not isinstance(curr_pos, list) or len(curr_pos) != 1:
                raise ValueError("MemoryAttention takes a single feature level: one-element lists curr and curr_pos")
            curr, curr_pos = curr[0], curr_pos[0]
        if curr.shape[1] not in (1, memory.shape[1]):
            raise ValueError(f"batch sizes differ: {curr.shape[1]} frame feature maps, {memory.shape[1]} memories")

        output = curr
        if self.pos_enc_at_input and curr_pos is not None:
            output = output + 0.1 * curr_pos
        if self.batch_first:
            output, curr_pos, memory, memory_pos = (
                None if x is None else x.transpose(0, 1).contiguous() for x in (output, curr_pos, memory, memory_pos)
            )
        for layer in self.layers:
            output = layer(output, memory, pos=memory_pos, query_pos=curr_pos, num_k_exclude_rope=num_obj_ptr_tokens)
        output = self.norm(output)
        return output.transpose(0, 1) if self.batch_first else output
