"""Held-out quality of a model on still images (1-frame videos): mean IoU of one click per object.

Each object is clicked once at its interior center (the SAM 2 paper's first click,
:func:`sam2_plugins.prompt_simulation.interior_center`); of the three masks SAM 2 returns for an ambiguous click the
one with the highest predicted IoU is kept (SAM's rule), and its IoU with the ground truth is the object's score.
No mask prompt is given: a mask prompt would score the ground truth against itself.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from ..datasets import VosVideo
from ..metrics import jaccard_index
from ..model.image_predictor import Sam2ImagePredictor
from ..model.sam2_model import Sam2Model
from ..prompt_simulation import interior_center


def held_out_iou(model: Sam2Model, images: Sequence[VosVideo], device: str | torch.device | None = None) -> float:
    """Mean IoU (0..100) of every object of ``images`` (videos of one annotated frame) from one centre click, on a
    copy of ``model`` (inference switches it to eval mode)."""
    predictor = Sam2ImagePredictor(copy.deepcopy(model), device=device)
    scores = []
    for image in images:
        frame = image.annotated_frames()[0]
        with image.frames() as frames:
            predictor.set_image(frames[frame])
        for gt in image.masks(frame).values():
            masks, predicted_ious, _ = predictor.predict(
                point_coords=np.array([interior_center(gt)]), point_labels=np.array([1]), multimask_output=True
            )
            scores.append(jaccard_index(gt, masks[int(np.argmax(predicted_ious))] > 0))
    if not scores:
        raise ValueError("the held-out images hold no object masks to score: hold out images with instance masks")
    return 100.0 * float(np.mean(scores))
