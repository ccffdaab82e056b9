"""`Sam2AutomaticMaskGenerator`: every object of an image from a grid of clicks, Meta's parameters and records.

Per crop (the whole image, then the crops of each crop layer): the crop is embedded once, the grid's clicks are
decoded `points_per_batch` at a time, masks are kept by predicted IoU and stability, masks touching an inner crop
edge dropped, duplicates removed by box NMS (within a crop, then across crops preferring smaller crops). Only
masks that pass the IoU filter are upsampled to full resolution.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from .amg import (
    MaskTable,
    Rle,
    box_area,
    build_all_layer_point_grids,
    coco_rle,
    generate_crop_boxes,
    is_box_near_crop_edge,
    masks_to_boxes,
    masks_to_rle,
    nms,
    remove_small_regions,
    rle_area,
    rle_to_mask,
    stability_score,
    uncrop_boxes,
    uncrop_masks,
    uncrop_points,
)
from .configs import Sam2Config
from .image_predictor import LOW_RES_LOGIT_LIMIT, Sam2ImagePredictor, as_rgb_image, postprocess_masks

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
UPSAMPLED_MASKS_PER_STEP = 32  # full-resolution logits held at once


def _xywh(box: np.ndarray) -> list[float]:
    x0, y0, x1, y1 = box
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


class Sam2AutomaticMaskGenerator:
    """Masks for a whole image from a grid of point prompts (Meta's `SAM2AutomaticMaskGenerator`, same defaults).

    `points_per_side` (or explicit `point_grids` in [0, 1], one per crop layer) sets the clicks; masks need a
    predicted IoU above `pred_iou_thresh` and a stability score (IoU of the mask thresholded at `mask_threshold` +-
    `stability_score_offset`) of at least `stability_score_thresh`; `box_nms_thresh` / `crop_nms_thresh` are the
    box IoUs above which duplicates go. `crop_n_layers` > 0 also runs on (2^i)² crops overlapping by
    `crop_overlap_ratio`, with `crop_n_points_downscale_factor`^i fewer points per side. `min_mask_region_area` > 0
    fills holes and removes specks of up to that many pixels in the low-resolution masks. `use_m2m` refines each
    mask once with itself as the mask prompt. `output_mode`: "binary_mask", "uncompressed_rle" or "coco_rle".
    """

    def __init__(
        self,
        predictor: Sam2ImagePredictor,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
    ) -> None:
        if not isinstance(predictor, Sam2ImagePredictor):
            raise TypeError(
                f"predictor is a {type(predictor).__name__}; pass a Sam2ImagePredictor "
                "(Sam2ImagePredictor.from_checkpoint(...)) or use Sam2AutomaticMaskGenerator.from_checkpoint"
            )
        if (points_per_side is None) == (point_grids is None):
            raise ValueError(
                "pass exactly one of points_per_side (e.g. 32) and point_grids (one (N, 2) grid per layer)"
            )
        if crop_n_layers < 0:
            raise ValueError(f"crop_n_layers must be 0 or more, not {crop_n_layers}")
        if points_per_side is not None:
            if int(points_per_side / crop_n_points_downscale_factor**crop_n_layers) < 1:
                raise ValueError(
                    f"points_per_side={points_per_side} leaves crop layer {crop_n_layers} without points (each layer "
                    f"has crop_n_points_downscale_factor={crop_n_points_downscale_factor} times fewer per side)"
                )
            point_grids = build_all_layer_point_grids(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
        grids = [np.asarray(grid, dtype=np.float64) for grid in point_grids]
        if len(grids) < crop_n_layers + 1:
            raise ValueError(f"{len(grids)} point grids for {crop_n_layers + 1} layers: pass one grid per crop layer")
        for grid in grids:
            if grid.ndim != 2 or grid.shape[1] != 2 or not np.isfinite(grid).all():
                raise ValueError(f"a point grid of shape {grid.shape}: grids are (N, 2) finite x, y in [0, 1]")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode {output_mode!r} is not one of {', '.join(OUTPUT_MODES)}")
        if points_per_batch < 1:
            raise ValueError(f"points_per_batch must be 1 or more, not {points_per_batch}")
        self.predictor = predictor
        self.point_grids = grids
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.mask_threshold = mask_threshold
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.crop_n_points_downscale_factor = crop_n_points_downscale_factor
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode
        self.use_m2m = use_m2m
        self.multimask_output = multimask_output

    @classmethod
    def from_checkpoint(
        cls,
        path_or_name: str | os.PathLike,
        config: str | Sam2Config | None = None,
        image_size: int = 1024,
        device: str | torch.device | None = None,
        precision: str | None = None,
        **options: Any,
    ) -> Sam2AutomaticMaskGenerator:
        """A generator on `Sam2ImagePredictor.from_checkpoint(...)`; `options` are the generator's parameters."""
        predictor = Sam2ImagePredictor.from_checkpoint(
            path_or_name, config, image_size=image_size, device=device, precision=precision
        )
        return cls(predictor, **options)

    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Records of the masks found in an (H, W, 3) uint8 RGB (or (H, W) gray) image, best first within a crop.

        Each record: `segmentation` (per `output_mode`), `area` (pixels), `bbox` (x, y, w, h), `predicted_iou`,
        `point_coords` ([[x, y]] of the click), `stability_score`, `crop_box` (x, y, w, h). The predictor keeps the
        image's embedding when there are no crop layers, so `predict` and another `generate` on it cost no encoding.
        """
        image = as_rgb_image(image)
        with torch.inference_mode():
            data = self._generate_masks(image)
        boxes = data["boxes"].float().cpu().numpy()
        crop_boxes = data["crop_boxes"].float().cpu().numpy()
        points = data["points"].float().cpu().numpy()
        ious = data["iou_preds"].float().cpu().numpy()
        stability = data["stability_score"].float().cpu().numpy()
        return [
            {
                "segmentation": self._encode(rle),
                "area": rle_area(rle),
                "bbox": _xywh(boxes[index]),
                "predicted_iou": float(ious[index]),
                "point_coords": [points[index].tolist()],
                "stability_score": float(stability[index]),
                "crop_box": _xywh(crop_boxes[index]),
            }
            for index, rle in enumerate(data["rles"])
        ]

    def _encode(self, rle: Rle) -> np.ndarray | Rle:
        if self.output_mode == "binary_mask":
            return rle_to_mask(rle)
        return coco_rle(rle) if self.output_mode == "coco_rle" else rle

    def _generate_masks(self, image: np.ndarray) -> MaskTable:
        image_hw = image.shape[:2]
        crop_boxes, layers = generate_crop_boxes(image_hw, self.crop_n_layers, self.crop_overlap_ratio)
        data = MaskTable()
        for crop_box, layer in zip(crop_boxes, layers):
            data.cat(self._process_crop(image, crop_box, layer))
        if len(crop_boxes) > 1:
            # duplicates across crops: the mask of the smaller crop stays
            data.filter(nms(data["boxes"].float(), 1 / box_area(data["crop_boxes"]), self.crop_nms_thresh))
            self.predictor.reset_predictor()  # it holds the last crop, not the image
        return data

    def _process_crop(self, image: np.ndarray, crop_box: list[int], layer: int) -> MaskTable:
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1]
        if not self.predictor.holds_image(crop):
            self.predictor.set_image(crop)
        crop_hw = crop.shape[:2]
        points = self.point_grids[layer] * np.array(crop_hw)[None, ::-1]
        data = MaskTable()
        for start in range(0, len(points), self.points_per_batch):
            batch = points[start : start + self.points_per_batch]
            data.cat(self._process_batch(batch, crop_hw, crop_box, image.shape[:2]))
        data.filter(nms(data["boxes"].float(), data["iou_preds"], self.box_nms_thresh))
        data["boxes"] = uncrop_boxes(data["boxes"], crop_box)
        data["points"] = uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = torch.tensor(crop_box, device=self.predictor.device).expand(len(data), 4)
        return data

    def _decode_clicks(
        self, points: torch.Tensor, mask_input: torch.Tensor | None, multimask_output: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution logits (N * C, h, w) and IoU predictions (N * C,) of one positive click per point."""
        model_points = self.predictor.to_model_coords(points)[:, None]
        labels = torch.ones(len(points), 1, dtype=torch.int32, device=points.device)
        low_res, ious = self.predictor.predict_low_res(model_points, labels, None, mask_input, multimask_output)
        return low_res.flatten(0, 1), ious.flatten(0, 1)

    def _process_batch(
        self, points: np.ndarray, crop_hw: tuple[int, int], crop_box: list[int], image_hw: tuple[int, int]
    ) -> MaskTable:
        points = torch.as_tensor(points, dtype=torch.float32, device=self.predictor.device)
        low_res, ious = self._decode_clicks(points, None, self.multimask_output)
        points = points.repeat_interleave(len(low_res) // max(len(points), 1), dim=0)
        if self.use_m2m:  # each mask once more, as the mask prompt of its own click
            refined = [
                self._decode_clicks(
                    points[start : start + self.points_per_batch],
                    low_res[start : start + self.points_per_batch, None].clamp(
                        -LOW_RES_LOGIT_LIMIT, LOW_RES_LOGIT_LIMIT
                    ),
                    multimask_output=False,
                )
                for start in range(0, len(low_res), self.points_per_batch)
            ]
            low_res, ious = (torch.cat(parts) for parts in zip(*refined))
        data = MaskTable(low_res=low_res, iou_preds=ious, points=points)
        if self.pred_iou_thresh > 0.0:
            data.filter(data["iou_preds"] > self.pred_iou_thresh)
        masks, scores = [], []
        for start in range(0, len(data), UPSAMPLED_MASKS_PER_STEP):
            logits = postprocess_masks(
                data["low_res"][start : start + UPSAMPLED_MASKS_PER_STEP, None],
                crop_hw,
                self.predictor.mask_threshold,
                max_hole_area=self.min_mask_region_area,
                max_sprinkle_area=self.min_mask_region_area,
            )[:, 0]
            scores.append(stability_score(logits, self.mask_threshold, self.stability_score_offset))
            masks.append(logits > self.mask_threshold)
        data["stability_score"] = torch.cat(scores) if scores else ious.new_zeros(0)
        data["masks"] = torch.cat(masks) if masks else torch.zeros(0, *crop_hw, dtype=torch.bool, device=ious.device)
        if self.stability_score_thresh > 0.0:
            data.filter(data["stability_score"] >= self.stability_score_thresh)
        data["boxes"] = masks_to_boxes(data["masks"])
        data.filter(~is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, image_hw[1], image_hw[0]]))
        return MaskTable(
            iou_preds=data["iou_preds"],
            points=data["points"],
            stability_score=data["stability_score"],
            boxes=data["boxes"],
            rles=masks_to_rle(uncrop_masks(data["masks"], crop_box, *image_hw)),
        )

    @staticmethod
    def postprocess_small_regions(mask_data: MaskTable, min_area: int, nms_thresh: float) -> MaskTable:
        """Meta's optional clean-up of a table with `rles` and `boxes`: holes and islands under `min_area` pixels
        removed, then box NMS preferring unchanged masks (edits `mask_data` in place and returns it)."""
        if len(mask_data["rles"]) == 0:
            return mask_data
        masks, unchanged = [], []
        for rle in mask_data["rles"]:
            mask, holes_changed = remove_small_regions(rle_to_mask(rle), min_area, mode="holes")
            mask, islands_changed = remove_small_regions(mask, min_area, mode="islands")
            masks.append(mask)
            unchanged.append(float(not (holes_changed or islands_changed)))
        masks = torch.as_tensor(np.stack(masks))
        boxes = masks_to_boxes(masks)
        keep = nms(boxes.float(), torch.tensor(unchanged), nms_thresh)
        for index in keep.tolist():
            if not unchanged[index]:
                mask_data["rles"][index] = masks_to_rle(masks[index : index + 1])[0]
                mask_data["boxes"][index] = boxes[index]
        mask_data.filter(keep)
        return mask_data
