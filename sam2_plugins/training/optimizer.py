"""Meta's SAM 2 fine-tuning optimizer: AdamW with a lower learning rate for the image encoder, layer-wise decay
of the Hiera trunk's rates, no weight decay on biases and LayerNorms, a cosine schedule to a tenth, clipping."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..model.sam2_model import Sam2Model

IMAGE_ENCODER, TRUNK = "image_encoder.", "image_encoder.trunk."


@dataclass(frozen=True)
class OptimizerRecipe:
    """The defaults are Meta's (sam2.1_hiera_b+_MOSE_finetune.yaml)."""

    lr: float = 5e-6
    vision_lr: float = 3e-6
    weight_decay: float = 0.1
    layer_decay: float = 0.9
    final_lr_fraction: float = 0.1
    max_grad_norm: float = 0.1

    def __post_init__(self) -> None:
        for name in ("lr", "vision_lr"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value} (Meta's fine-tuning uses 5e-6, 3e-6)")


def trunk_layer_scale(model: Sam2Model, name: str, decay: float) -> float:
    """Learning-rate factor of a parameter: decay ** depth-from-the-top for Hiera blocks, 1 for position embeddings
    and everything outside the trunk (BEiT-style layer decay, as Meta applies it)."""
    if not name.startswith(TRUNK) or "pos_embed" in name:
        return 1.0
    num_blocks = len(model.image_encoder.trunk.blocks)
    if "patch_embed" in name:
        layer = 0
    elif ".blocks." in name:
        layer = int(name.split(".blocks.")[1].split(".")[0]) + 1
    else:
        layer = num_blocks + 1
    return decay ** (num_blocks + 1 - layer)


def build_optimizer(
    model: Sam2Model, recipe: OptimizerRecipe, total_steps: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable parameters (one group per rate and decay) and its per-step cosine schedule."""
    no_decay = {
        id(parameter)
        for module in model.modules()
        if isinstance(module, nn.LayerNorm)
        for parameter in module.parameters(recurse=False)
    }
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        base = recipe.vision_lr if name.startswith(IMAGE_ENCODER) else recipe.lr
        lr = base * trunk_layer_scale(model, name, recipe.layer_decay)
        decay = 0.0 if "bias" in name or id(parameter) in no_decay else recipe.weight_decay
        groups.setdefault((lr, decay), []).append(parameter)
    if not groups:
        raise ValueError("every parameter is frozen: nothing to train (freeze fewer modules)")
    optimizer = torch.optim.AdamW(
        [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()]
    )
    floor = recipe.final_lr_fraction

    def cosine(step: int) -> float:
        progress = min(step / max(total_steps, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
