"""The assembled SAM 2 network: image encoding, prompting, memory conditioning and memory encoding.

Every method works on a batch of objects of one frame at a time; the video session decides which memories each
object sees (`memory_bank.MemorySelection`) and batches objects whose memories line up. Parameter names are the
official checkpoint's (`maskmem_tpos_enc`, `no_mem_embed`, `obj_ptr_proj`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.init import trunc_normal_

from .position_encoding import sine_encoding_1d
from .prompt_encoder import PADDING_LABEL

NO_OBJECT_SCORE = -1024.0  # mask logit of an object absent from a frame
NUM_MASK_MEMORIES = 7  # spatial memory slots: conditioning frames (slot 0) + the 6 previous frames
MAX_OBJECT_POINTERS = 16
MASK_PROBABILITY_SCALE, MASK_PROBABILITY_BIAS = 20.0, -10.0  # masks as memory-encoder input / as logits


@dataclass
class FrameFeatures:
    """Image-encoder output of one frame, batch 1: decoder high-resolution maps and the stride-16 map."""

    high_res: list[torch.Tensor]  # (1, C/8, 4h, 4w), (1, C/4, 2h, 2w), already projected for the decoder
    vision: torch.Tensor  # (1, C, h, w)
    vision_pos: torch.Tensor  # (1, C, h, w)


@dataclass
class Prediction:
    """Per-object result of a frame: chosen mask logits, object pointer and object-presence score."""

    low_res_masks: torch.Tensor  # (B, 1, S/4, S/4)
    object_pointers: torch.Tensor  # (B, C)
    object_scores: torch.Tensor  # (B, 1) logits, > 0 means the object is visible
    candidate_masks: torch.Tensor  # (B, M, S/4, S/4) every mask the decoder proposed (M = 3 multimask, else 1)
    candidate_ious: torch.Tensor  # (B, M) their predicted IoUs (training supervises them)


@dataclass
class MemoryInputs:
    """Memories of a batch of objects with the same layout: spatial maps per slot and object pointers."""

    spatial: list[tuple[int, torch.Tensor]]  # (slot 0..6, (B, C_mem, h, w)); slot 0 = conditioning frame
    pointers: list[tuple[int, torch.Tensor]]  # (temporal distance, (B, C))
    max_pointer_distance: int  # normalizer of the pointer temporal encoding (min(num_frames, 16) - 1)


class Sam2Model(nn.Module):
    """SAM 2 / 2.1 with the inference behaviour of Meta's video predictor; see `configs.build_model`."""

    def __init__(
        self,
        image_encoder: nn.Module,
        memory_attention: nn.Module,
        memory_encoder: nn.Module,
        prompt_encoder: nn.Module,
        mask_decoder: nn.Module,
        object_pointer_projection: nn.Module,
        image_size: int,
        temporal_pointer_encoding: bool,
        no_object_spatial_embedding: bool,
        binarize_click_masks_for_memory: bool,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.memory_attention = memory_attention
        self.memory_encoder = memory_encoder
        self.sam_prompt_encoder = prompt_encoder
        self.sam_mask_decoder = mask_decoder
        self.image_size = image_size
        self.hidden_dim = image_encoder.neck.d_model
        self.mem_dim = memory_encoder.out_proj.weight.shape[0]
        self.binarize_click_masks_for_memory = binarize_click_masks_for_memory

        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(NUM_MASK_MEMORIES, 1, 1, self.mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, self.hidden_dim))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, self.hidden_dim))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, self.hidden_dim))
        # turns a mask prompt into low-resolution logits to get an object pointer from the decoder
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.obj_ptr_proj = object_pointer_projection
        self.obj_ptr_tpos_proj = nn.Linear(self.hidden_dim, self.mem_dim) if temporal_pointer_encoding else None
        self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, self.mem_dim)) if no_object_spatial_embedding else None
        for parameter in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc, self.no_obj_ptr):
            trunc_normal_(parameter, std=0.02)
        if self.no_obj_embed_spatial is not None:
            trunc_normal_(self.no_obj_embed_spatial, std=0.02)

    @property
    def device(self) -> torch.device:
        return self.no_mem_embed.device

    # ---------------------------------------------------------------- image
    def encode_image(self, image: torch.Tensor) -> FrameFeatures:
        """Features of one normalized image (1, 3, S, S)."""
        out = self.image_encoder(image)
        fpn = out["backbone_fpn"]
        high_res = [self.sam_mask_decoder.conv_s0(fpn[0]), self.sam_mask_decoder.conv_s1(fpn[1])]
        return FrameFeatures(high_res=high_res, vision=fpn[-1], vision_pos=out["vision_pos_enc"][-1])

    # ---------------------------------------------------------------- prompts and decoding
    def decode(
        self,
        image_embedding: torch.Tensor,
        high_res: list[torch.Tensor],
        point_coords: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        mask_logits: torch.Tensor | None = None,
        multimask: bool = False,
    ) -> Prediction:
        """Run the prompt encoder and mask decoder on B objects' (memory-conditioned) embeddings (B, C, h, w).

        Points are model-input pixels (B, N, 2) with labels (B, N); `mask_logits` (B, 1, S/4, S/4) is a dense
        prompt. With `multimask`, the mask with the highest predicted IoU is chosen.
        """
        batch = image_embedding.shape[0]
        if point_coords is None:
            point_coords = image_embedding.new_zeros(batch, 1, 2)
            point_labels = torch.full((batch, 1), PADDING_LABEL, dtype=torch.int32, device=image_embedding.device)
        if mask_logits is not None and mask_logits.shape[-2:] != self.sam_prompt_encoder.mask_input_size:
            mask_logits = F.interpolate(
                mask_logits.float(),
                self.sam_prompt_encoder.mask_input_size,
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        sparse, dense = self.sam_prompt_encoder(points=(point_coords, point_labels), boxes=None, masks=mask_logits)
        masks, ious, tokens, object_scores = self.sam_mask_decoder(
            image_embeddings=image_embedding,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            repeat_image=False,
            high_res_features=[x.expand(batch, -1, -1, -1) for x in high_res],
        )
        visible = object_scores > 0
        candidates = torch.where(visible[:, :, None, None], masks, NO_OBJECT_SCORE).float()
        masks, token = candidates, tokens[:, 0]
        if multimask:
            best = torch.argmax(ious, dim=-1)
            rows = torch.arange(batch, device=masks.device)
            masks = candidates[rows, best].unsqueeze(1)
            if tokens.shape[1] > 1:
                token = tokens[rows, best]
        pointers = self._occlusion_gated_pointer(self.obj_ptr_proj(token), visible.float())
        return Prediction(masks, pointers, object_scores, candidates, ious)

    def mask_as_output(self, features: FrameFeatures, masks: torch.Tensor) -> Prediction:
        """Take binary masks (B, 1, S, S) as the prediction itself, with a pointer decoded from them."""
        logits = masks.float() * MASK_PROBABILITY_SCALE + MASK_PROBABILITY_BIAS
        low_res = F.interpolate(
            logits,
            size=(logits.shape[-2] // 4, logits.shape[-1] // 4),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        batch = masks.shape[0]
        pointers = self.decode(
            features.vision.expand(batch, -1, -1, -1),
            features.high_res,
            mask_logits=self.mask_downsample(masks.float()),
        ).object_pointers
        visible = torch.any(masks.flatten(1) > 0, dim=1, keepdim=True).float()
        object_scores = visible * MASK_PROBABILITY_SCALE + MASK_PROBABILITY_BIAS
        pointers = self._occlusion_gated_pointer(pointers, visible)
        return Prediction(low_res, pointers, object_scores, low_res, low_res.new_ones(batch, 1))

    def _occlusion_gated_pointer(self, pointers: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Pointers of absent objects are replaced by the learned no-object pointer."""
        return visible * pointers + (1 - visible) * self.no_obj_ptr

    def upsample_masks(self, low_res_masks: torch.Tensor) -> torch.Tensor:
        """Low-resolution mask logits at the model's input size (bilinear)."""
        return F.interpolate(low_res_masks, size=(self.image_size,) * 2, mode="bilinear", align_corners=False)

    # ---------------------------------------------------------------- memory
    def without_memory(self, features: FrameFeatures, batch: int) -> torch.Tensor:
        """Embedding of a first conditioning frame: the image features plus the learned no-memory embedding."""
        return (features.vision + self.no_mem_embed.view(1, -1, 1, 1)).expand(batch, -1, -1, -1)

    def with_memory(self, features: FrameFeatures, memory: MemoryInputs) -> torch.Tensor:
        """Condition the frame's features on B objects' memories (memory attention): (B, C, h, w)."""
        batch = memory.spatial[0][1].shape[0] if memory.spatial else memory.pointers[0][1].shape[0]
        tokens, positions = self._spatial_memory_tokens(memory.spatial)
        pointer_tokens, pointer_positions = self._pointer_tokens(memory.pointers, memory.max_pointer_distance, batch)
        # frame tokens of batch 1 are shared by all objects: what precedes the first cross-attention runs once
        conditioned = self.memory_attention(
            curr=features.vision.flatten(2).permute(2, 0, 1),
            curr_pos=features.vision_pos.flatten(2).permute(2, 0, 1),
            memory=torch.cat(tokens + [pointer_tokens], dim=0),
            memory_pos=torch.cat(positions + [pointer_positions], dim=0),
            num_obj_ptr_tokens=pointer_tokens.shape[0],
        )
        side = features.vision.shape[-2:]
        return conditioned.permute(1, 2, 0).reshape(batch, self.hidden_dim, *side)

    def _spatial_memory_tokens(
        self, spatial: list[tuple[int, torch.Tensor]]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(HW, B, C_mem) tokens per memory frame and their spatial + temporal encodings."""
        dtype = self.no_mem_embed.dtype
        tokens, positions = [], []
        if spatial:  # every memory frame has the frame's feature size: one spatial encoding serves all
            spatial_pos = self.memory_position_encoding(spatial[0][1].shape[-2:]).flatten(2).permute(2, 0, 1)
        for slot, features in spatial:
            tokens.append(features.to(dtype).flatten(2).permute(2, 0, 1))
            positions.append((spatial_pos + self.maskmem_tpos_enc[NUM_MASK_MEMORIES - slot - 1]).expand_as(tokens[-1]))
        return tokens, positions

    def _pointer_tokens(
        self, pointers: list[tuple[int, torch.Tensor]], max_distance: int, batch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Object pointers split into C / C_mem tokens each, (P * C / C_mem, B, C_mem), and their encodings."""
        if not pointers:
            empty = self.no_mem_embed.new_zeros(0, batch, self.mem_dim)
            return empty, empty
        distances, vectors = zip(*pointers)
        stacked = torch.stack(vectors, dim=0)  # (P, B, C)
        count = stacked.shape[0]
        if self.obj_ptr_tpos_proj is not None:
            relative = torch.tensor(distances, dtype=torch.float32, device=stacked.device) / max_distance
            encoding = self.obj_ptr_tpos_proj(sine_encoding_1d(relative, dim=self.hidden_dim))
            encoding = encoding.unsqueeze(1).expand(-1, batch, -1)
        else:
            encoding = stacked.new_zeros(count, batch, self.mem_dim)
        splits = self.hidden_dim // self.mem_dim
        tokens = stacked.reshape(count, batch, splits, self.mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
        return tokens, encoding.repeat_interleave(splits, dim=0)

    def memory_position_encoding(self, size: tuple[int, int]) -> torch.Tensor:
        """Sine encoding (1, C_mem, h, w) of spatial memories; the same for every frame and object."""
        probe = self.no_mem_embed.new_empty(1, self.mem_dim, *size)
        return self.memory_encoder.position_encoding(probe).to(self.no_mem_embed.dtype)

    def encode_memory(
        self, features: FrameFeatures, high_res_masks: torch.Tensor, object_scores: torch.Tensor, prompted: bool
    ) -> torch.Tensor:
        """Spatial memories (B, C_mem, h, w) of B objects' masks (B, 1, S, S) on this frame; `prompted` masks are
        prompt results (binarized when the model is built with postprocessing)."""
        if prompted and self.binarize_click_masks_for_memory:
            mask_for_memory = (high_res_masks > 0).float()
        else:
            mask_for_memory = torch.sigmoid(high_res_masks)
        mask_for_memory = mask_for_memory * MASK_PROBABILITY_SCALE + MASK_PROBABILITY_BIAS
        # the frame's features (batch 1) are projected once and shared by every object's mask
        memory = self.memory_encoder(features.vision, mask_for_memory, skip_mask_sigmoid=True)["vision_features"]
        if self.no_obj_embed_spatial is not None:
            absent = (object_scores <= 0).to(memory.dtype)
            memory = memory + absent[:, :, None, None] * self.no_obj_embed_spatial[:, :, None, None]
        return memory
