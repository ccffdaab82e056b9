"""Our training step against Meta's training code (`SAM2Train` + `MultiStepMultiMasksAndIous`) on the same clip,
prompts (same seeds), weights and recipe: every loss term and every parameter gradient agree to 1e-4 relative."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from meta_training import build_meta_model, meta_batch, meta_loss
from random_checkpoint import write_random_checkpoint

from sam2_plugins.model.frame_features import preprocess_frame
from sam2_plugins.model.predictor import load_model
from sam2_plugins.sample_data import synthetic_video
from sam2_plugins.training.clip_tracking import track_clip
from sam2_plugins.training.loss import LOSS_TERMS, clip_loss
from sam2_plugins.training.prompting import PromptRecipe, PromptSampler

pytest.importorskip("sam2.build_sam")
pytest.importorskip("tensordict")
pytestmark = pytest.mark.parity

CONFIG, IMAGE_SIZE = "sam2.1_hiera_t", 128
CLIP_FRAMES = range(3, 8)  # object 2 enters at frame 5 and object 3 hides on frames 7-9: absent objects are scored
OBJECTS = [0, 2, 3]
RELATIVE = 1e-4


def _clip() -> tuple[torch.Tensor, torch.Tensor]:
    video = synthetic_video("clip", seed=3, num_frames=10, size=(96, 120))
    images = torch.stack([preprocess_frame(video.frames[t], IMAGE_SIZE) for t in CLIP_FRAMES])
    masks = torch.from_numpy(video.masks[OBJECTS][:, list(CLIP_FRAMES)]).transpose(0, 1).float()
    masks = F.interpolate(masks, size=(IMAGE_SIZE, IMAGE_SIZE), mode="nearest") > 0
    return images, masks


def _training_mode(model: torch.nn.Module) -> torch.nn.Module:
    """Train mode without dropout (the only randomness besides prompts), as Meta's with dropout 0."""
    model.train()
    model.memory_attention.eval()
    return model


RECIPES = {
    "masks": PromptRecipe(point_probability=0.0),
    "clicks_and_corrections": PromptRecipe(point_probability=1.0, box_probability=0.0, corrections_per_frame=3),
    "boxes_and_corrections": PromptRecipe(point_probability=1.0, box_probability=1.0, corrections_per_frame=3),
    "meta_recipe_seed_2": PromptRecipe(),
}


@pytest.mark.parametrize("case", list(RECIPES))
def test_loss_terms_and_gradients_match_meta_training(case: str, tmp_path: Path) -> None:
    recipe = RECIPES[case]
    torch_seed = int(case.rsplit("_", 1)[-1]) if case.startswith("meta") else 1
    checkpoint = write_random_checkpoint(tmp_path, CONFIG, IMAGE_SIZE)
    images, masks = _clip()

    meta = _training_mode(build_meta_model(checkpoint, CONFIG, IMAGE_SIZE, recipe))
    meta.rng = np.random.default_rng(42)
    torch.manual_seed(torch_seed)
    meta_outputs = meta(meta_batch(images, masks))
    meta_losses = meta_loss()(meta_outputs, masks)
    meta_losses["core_loss"].backward()

    ours = _training_mode(load_model(checkpoint, CONFIG, image_size=IMAGE_SIZE, apply_postprocessing=False))
    sampler = PromptSampler(recipe, seed=42)
    torch.manual_seed(torch_seed)
    prompts = sampler.sample(masks)
    our_losses = clip_loss(track_clip(ours, images[:, None], masks, prompts, sampler), masks)
    our_losses["loss"].backward()

    assert prompts.conditioning_frames == meta_outputs_conditioning(meta_outputs)
    for term in LOSS_TERMS:
        torch.testing.assert_close(our_losses[term], meta_losses[term].float(), rtol=RELATIVE, atol=0, msg=term)
    torch.testing.assert_close(our_losses["loss"], meta_losses["core_loss"], rtol=RELATIVE, atol=0)
    meta_parameters = dict(meta.named_parameters())
    # relative error of each parameter's gradient (L2); gradients that are zero in exact arithmetic (key biases
    # before a softmax) are rounding noise in both, so the reference norm is floored at 1e-3 of the largest one
    norms = {name: p.grad.norm().item() for name, p in meta_parameters.items() if p.grad is not None}
    floor = 1e-3 * max(norms.values())
    compared = 0
    for name, parameter in ours.named_parameters():
        if name not in norms:
            assert parameter.grad is None or not parameter.grad.any(), name
            continue
        error = (parameter.grad - meta_parameters[name].grad).norm().item() / max(norms[name], floor)
        assert error <= RELATIVE, f"{name}: gradient differs from Meta's by {error:.2e} relative"
        compared += 1
    assert compared > 100  # the image encoder, memory attention and encoder, decoder and pointer heads all learn


def meta_outputs_conditioning(outputs: list[dict]) -> list[int]:
    """The frames Meta decoded from a prompt: those whose first step saw clicks or took the mask as output."""
    return [t for t, out in enumerate(outputs) if out["multistep_point_inputs"][0] is not None or _mask_frame(out)]


def _mask_frame(out: dict) -> bool:
    high_res = out["multistep_pred_multimasks_high_res"][0]
    return bool(((high_res == 10.0) | (high_res == -10.0)).all())


def test_prompt_recipe_rejects_impossible_settings() -> None:
    with pytest.raises(ValueError, match="point_probability"):
        PromptRecipe(point_probability=1.5)
    with pytest.raises(ValueError, match="max_conditioning_frames"):
        replace(PromptRecipe(), max_conditioning_frames=3, max_corrected_frames=2)
