"""Meta's training code (../shared/reference/sam2_training, importable as `training.*`) as the tests' yardstick:
its `SAM2Train` built on the reference `sam2` package from a checkpoint, and clips in its batch format."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from sam2_plugins.training.prompting import PromptRecipe

META_TRAINING = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "sam2_training"


def import_meta_training():
    """`training.model.sam2` and `training.loss_fns`, with Meta's folder on sys.path."""
    if str(META_TRAINING) not in sys.path:
        sys.path.insert(0, str(META_TRAINING))
    import training.loss_fns
    import training.model.sam2
    import training.utils.data_utils

    return training


def build_meta_model(
    checkpoint: Path, config: str, image_size: int, recipe: PromptRecipe, freeze_image_encoder: bool = False
):
    """Meta's `SAM2Train` of `config` with the checkpoint's weights and `recipe`'s prompt settings, train mode."""
    import_meta_training()
    from sam2.build_sam import build_sam2

    folder = "sam2.1" if config.startswith("sam2.1") else "sam2"
    overrides = [
        "++model._target_=training.model.sam2.SAM2Train",
        f"++model.image_size={image_size}",
        f"++model.prob_to_use_pt_input_for_train={recipe.point_probability}",
        f"++model.prob_to_use_box_input_for_train={recipe.box_probability}",
        f"++model.prob_to_sample_from_gt_for_train={recipe.ground_truth_click_probability}",
        f"++model.num_frames_to_correct_for_train={recipe.max_corrected_frames}",
        "++model.rand_frames_to_correct_for_train=true",
        f"++model.add_all_frames_to_correct_as_cond={str(recipe.corrected_frames_condition).lower()}",
        f"++model.num_init_cond_frames_for_train={recipe.max_conditioning_frames}",
        "++model.rand_init_cond_frames_for_train=true",
        f"++model.num_correction_pt_per_frame={recipe.corrections_per_frame}",
        f"++model.freeze_image_encoder={str(freeze_image_encoder).lower()}",
    ]
    model = build_sam2(
        f"configs/{folder}/{config}.yaml",
        None,
        device="cpu",
        mode="train",
        hydra_overrides_extra=overrides,
        apply_postprocessing=False,
    )
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    model.load_state_dict(state, strict=True)
    return model.train()


def meta_batch(images: torch.Tensor, masks: torch.Tensor):
    """One clip (T, 3, S, S) with objects' masks (T, O, S, S) as Meta's `BatchedVideoDatapoint` (batch of 1 video)."""
    training = import_meta_training()
    data_utils = training.utils.data_utils
    num_frames, num_objects = masks.shape[:2]
    frame_and_video = torch.stack(
        [torch.tensor([[t, 0]] * num_objects, dtype=torch.int) for t in range(num_frames)], dim=0
    )
    identifiers = torch.zeros(num_frames, num_objects, 3, dtype=torch.long)
    sizes = torch.tensor(images.shape[-2:]).repeat(num_frames, num_objects, 1)
    return data_utils.BatchedVideoDatapoint(
        img_batch=images.unsqueeze(1),
        obj_to_frame_idx=frame_and_video,
        masks=masks,
        metadata=data_utils.BatchedVideoMetaData(unique_objects_identifier=identifiers, frame_orig_size=sizes),
        dict_key="all",
        batch_size=[num_frames],
    )


def meta_loss():
    """Meta's `MultiStepMultiMasksAndIous` with its fine-tuning recipe's settings."""
    training = import_meta_training()
    return training.loss_fns.MultiStepMultiMasksAndIous(
        weight_dict={"loss_mask": 20, "loss_dice": 1, "loss_iou": 1, "loss_class": 1},
        supervise_all_iou=True,
        iou_use_l1_loss=True,
        pred_obj_scores=True,
        focal_gamma_obj_score=0.0,
        focal_alpha_obj_score=-1.0,
    )
