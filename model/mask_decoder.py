"""SAM mask decoder: prompt and output tokens against the image, masks from the upscaled image tokens."""

from __future__ import annotations

import torch
from torch import nn

from .common import MLP, LayerNorm2d


class MaskDecoder(nn.Module):
    """Predicts mask logits, IoU scores, the object-pointer token and an object-presence score.

    Output tokens, in order: object-score token (when `pred_obj_scores`), IoU token, then one single-mask token and
    `num_multimask_outputs` multimask tokens.
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: nn.Module,
        num_multimask_outputs: int = 3,
        activation: type[nn.Module] = nn.GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        use_high_res_features: bool = False,
        iou_prediction_use_sigmoid: bool = False,
        dynamic_multimask_via_stability: bool = False,
        dynamic_multimask_stability_delta: float = 0.05,
        dynamic_multimask_stability_thresh: float = 0.98,
        pred_obj_scores: bool = False,
        pred_obj_scores_mlp: bool = False,
        use_multimask_token_for_obj_ptr: bool = False,
    ) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, transformer_dim)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr

        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            activation(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            activation(),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            self.conv_s0 = nn.Conv2d(transformer_dim, transformer_dim // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(transformer_dim, transformer_dim // 4, kernel_size=1)

        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            transformer_dim,
            iou_head_hidden_dim,
            self.num_mask_tokens,
            iou_head_depth,
            sigmoid_output=iou_prediction_use_sigmoid,
        )
        if pred_obj_scores:
            self.pred_obj_score_head = (
                MLP(transformer_dim, transformer_dim, 1, 3) if pred_obj_scores_mlp else nn.Linear(transformer_dim, 1)
            )
        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode B prompts against image embeddings (B, C, h, w), or (1, C, h, w) shared when `repeat_image`.

        Returns mask logits (B, M, 4h, 4w), IoU scores (B, M) with M = 3 for `multimask_output` else 1, the
        object-pointer tokens (B, 3 or 1, C) and object-score logits (B, 1).
        """
        masks, iou_pred, mask_tokens_out, object_score_logits = self.predict_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            repeat_image,
            high_res_features,
        )
        if multimask_output:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, iou_pred = self._single_mask_or_best_multimask(masks, iou_pred)
        else:
            masks, iou_pred = masks[:, :1], iou_pred[:, :1]
        # The pointer token is the single-mask token unless configured to follow the multimask outputs.
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            pointer_tokens = mask_tokens_out[:, 1:]
        else:
            pointer_tokens = mask_tokens_out[:, :1]
        return masks, iou_pred, pointer_tokens, object_score_logits

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        repeat_image: bool,
        high_res_features: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """All `num_mask_tokens` masks, IoU scores and mask tokens, and the object-score logits."""
        learned_tokens = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            learned_tokens.insert(0, self.obj_score_token.weight)
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat(learned_tokens).expand(batch, -1, -1)
        tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)

        if repeat_image:
            image_embeddings = image_embeddings.repeat_interleave(batch, dim=0)
        elif image_embeddings.shape[0] != batch:
            raise ValueError(
                f"{image_embeddings.shape[0]} image embeddings for {batch} prompts: pass one per prompt "
                "or repeat_image=True"
            )
        src = image_embeddings + dense_prompt_embeddings
        b, c, h, w = src.shape
        hs, image_tokens = self.transformer(src, image_pe, tokens)
        iou_index = int(self.pred_obj_scores)  # after the object-score token, when there is one
        iou_token_out = hs[:, iou_index]
        mask_tokens_out = hs[:, iou_index + 1 : iou_index + 1 + self.num_mask_tokens]

        upscaled = self._upscale(image_tokens.transpose(1, 2).reshape(b, c, h, w), high_res_features)
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, index]) for index, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        masks = (hyper_in @ upscaled.flatten(2)).unflatten(-1, upscaled.shape[-2:])

        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0])
        else:
            # Without a score head the object always counts as present: sigmoid(10) ~ 1.
            object_score_logits = iou_pred.new_full((b, 1), 10.0)
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def _upscale(self, image: torch.Tensor, high_res_features: list[torch.Tensor] | None) -> torch.Tensor:
        """Upscale the image tokens 4x, adding the stride-4 and stride-8 backbone features when used."""
        if not self.use_high_res_features:
            return self.output_upscaling(image)
        deconv1, norm1, act1, deconv2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res_features
        upscaled = act1(norm1(deconv1(image) + feat_s1))
        return act2(deconv2(upscaled) + feat_s0)

    def _stability_scores(self, mask_logits: torch.Tensor) -> torch.Tensor:
        """IoU of the masks thresholded at +delta and at -delta (1 when both are empty)."""
        flat = mask_logits.flatten(-2)
        delta = self.dynamic_multimask_stability_delta
        intersection = (flat > delta).sum(-1).float()
        union = (flat > -delta).sum(-1).float()
        return torch.where(union > 0, intersection / union, 1.0)

    def _single_mask_or_best_multimask(
        self, all_masks: torch.Tensor, all_iou: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep the single-mask output where it is stable, else the multimask output with the best IoU score."""
        best = all_iou[:, 1:].argmax(dim=-1) + 1
        rows = torch.arange(all_masks.shape[0], device=all_masks.device)
        best_masks, best_iou = all_masks[rows, best].unsqueeze(1), all_iou[rows, best].unsqueeze(1)
        single_masks, single_iou = all_masks[:, :1], all_iou[:, :1]
        stable = self._stability_scores(single_masks) >= self.dynamic_multimask_stability_thresh
        masks = torch.where(stable[..., None, None], single_masks, best_masks)
        return masks, torch.where(stable, single_iou, best_iou)
