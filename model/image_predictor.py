"""`Sam2ImagePredictor`: SAM 2 on still images with the API of Meta's `SAM2ImagePredictor` (embed once, prompt often).

Images are ``(H, W, 3)`` uint8 RGB or ``(H, W)`` uint8 grayscale; `sam2_plugins.frames.image_to_rgb_uint8` turns
16-bit, float and other images into that by the library's percentile rule. Prompts are in image pixels (or in
[0, 1] with ``normalize_coords=False``), points as (x, y) with labels 1 (object) / 0 (background), boxes as
x0, y0, x1, y1.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .configs import Sam2Config
from .frame_features import IMAGENET_MEAN, IMAGENET_STD
from .postprocess import small_regions
from .predictor import ModelOnDevice, load_model
from .sam2_model import Sam2Model

LOW_RES_LOGIT_LIMIT = 32.0  # returned low-resolution logits are clamped to +-32, as Meta's
FILLED_REGION_LOGIT_OFFSET = 10.0  # a filled hole becomes threshold + 10, a removed sprinkle threshold - 10
BOX_CORNER_LABELS = (2, 3)  # prompt-encoder labels of a box's top-left and bottom-right corners
_CONVERSION_HINT = "convert it with sam2_plugins.frames.image_to_rgb_uint8(image) (percentile rule for 16-bit/float)"


def preprocess_image(image: np.ndarray, image_size: int) -> torch.Tensor:
    """An (H, W, 3) uint8 RGB image as the model's (3, S, S) float32 input, as Meta's image path does: scale to
    [0, 1], bilinear antialiased resize of the float tensor to S x S, ImageNet normalization."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    if tensor.shape[-2:] != (image_size, image_size):
        tensor = F.interpolate(
            tensor[None], size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
        )[0]
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
    return (tensor - mean) / std


def as_rgb_image(image: np.ndarray, where: str = "image") -> np.ndarray:
    """`image` (array or PIL image) as (H, W, 3) uint8 RGB: grayscale (H, W) repeated; other input a clear error."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise TypeError(f"{where} has dtype {array.dtype}; the model reads uint8 RGB: {_CONVERSION_HINT}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) == 0:
        raise ValueError(
            f"{where} has shape {array.shape}; the model reads (H, W, 3) RGB or (H, W) grayscale: {_CONVERSION_HINT}"
        )
    return array


def postprocess_masks(
    low_res_masks: torch.Tensor,
    image_hw: tuple[int, int],
    mask_threshold: float = 0.0,
    max_hole_area: float = 0.0,
    max_sprinkle_area: float = 0.0,
) -> torch.Tensor:
    """Low-resolution logits (B, C, h, w) as logits at the image size (bilinear), after filling background
    regions of up to `max_hole_area` pixels and removing foreground regions of up to `max_sprinkle_area` pixels
    (8-connected, at low resolution, both found on the masks as predicted)."""
    masks = low_res_masks.float()
    if max_hole_area > 0 or max_sprinkle_area > 0:
        foreground = (masks > mask_threshold).cpu().numpy()
        filled = masks
        if max_hole_area > 0:
            holes = torch.from_numpy(small_regions(~foreground, max_hole_area)).to(masks.device)
            filled = torch.where(holes, mask_threshold + FILLED_REGION_LOGIT_OFFSET, filled)
        if max_sprinkle_area > 0:
            sprinkles = torch.from_numpy(small_regions(foreground, max_sprinkle_area)).to(masks.device)
            filled = torch.where(sprinkles, mask_threshold - FILLED_REGION_LOGIT_OFFSET, filled)
        masks = filled
    return F.interpolate(masks, image_hw, mode="bilinear", align_corners=False)


@dataclass
class ImageEmbedding:
    """One image's decoder inputs: the stride-16 embedding (with the no-memory embedding) and high-res maps."""

    embedding: torch.Tensor  # (1, C, h, w)
    high_res: list[torch.Tensor]  # (1, C/8, 4h, 4w), (1, C/4, 2h, 2w)
    image_hw: tuple[int, int]


def _digest(image: np.ndarray) -> bytes:
    digest = hashlib.blake2b(str(image.shape).encode(), digest_size=16)
    digest.update(np.ascontiguousarray(image).data)
    return digest.digest()


def _finite(values: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} holds NaN or infinite values; pass finite pixel coordinates")


class Sam2ImagePredictor(ModelOnDevice):
    """SAM 2 on images: `set_image` (or `set_image_batch`) embeds, `predict` (or `predict_batch`) decodes prompts.

    Same checkpoints and network as `Sam2VideoPredictor`; device and precision as `ModelOnDevice`. Masks are
    thresholded at `mask_threshold`; with `max_hole_area` / `max_sprinkle_area` > 0 small holes are filled and
    small specks removed in the low-resolution masks first.
    """

    def __init__(
        self,
        model: Sam2Model,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
        device: str | torch.device | None = None,
        compile: bool = False,
        precision: str | None = None,
    ) -> None:
        super().__init__(model, device=device, compile=compile, precision=precision)
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area
        self._images: list[ImageEmbedding] = []
        self._image_digest: bytes | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path_or_name: str | os.PathLike,
        config: str | Sam2Config | None = None,
        image_size: int = 1024,
        apply_postprocessing: bool = True,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
        device: str | torch.device | None = None,
        compile: bool = False,
        precision: str | None = None,
    ) -> Sam2ImagePredictor:
        """Load an official checkpoint file or name, as `Sam2VideoPredictor.from_checkpoint` does.

        `apply_postprocessing` (Meta's default) lets a single-mask prediction fall back to the best multimask
        output when it is unstable.
        """
        model = load_model(path_or_name, config, image_size=image_size, apply_postprocessing=apply_postprocessing)
        return cls(
            model,
            mask_threshold=mask_threshold,
            max_hole_area=max_hole_area,
            max_sprinkle_area=max_sprinkle_area,
            device=device,
            compile=compile,
            precision=precision,
        )

    # ---------------------------------------------------------------- images
    @property
    def is_image_set(self) -> bool:
        return bool(self._images)

    @property
    def image_sizes(self) -> list[tuple[int, int]]:
        """(H, W) of each image set."""
        return [image.image_hw for image in self._images]

    def reset_predictor(self) -> None:
        """Forget the images set."""
        self._images = []
        self._image_digest = None

    def set_image(self, image: np.ndarray) -> None:
        """Embed one (H, W, 3) uint8 RGB (or (H, W) grayscale) image for `predict`."""
        self.reset_predictor()
        image = as_rgb_image(image)
        self._images = self._embed([image])
        self._image_digest = _digest(image)

    def holds_image(self, image: np.ndarray) -> bool:
        """Whether `set_image` last embedded exactly this image (same pixels), so it need not be embedded again."""
        return self._image_digest is not None and self._image_digest == _digest(as_rgb_image(image))

    def set_image_batch(self, images: list[np.ndarray]) -> None:
        """Embed several images (each as for `set_image`) in one batch, for `predict_batch`."""
        if not isinstance(images, (list, tuple)) or not images:
            raise ValueError("set_image_batch takes a non-empty list of images")
        self.reset_predictor()
        self._images = self._embed([as_rgb_image(image, f"image {i}") for i, image in enumerate(images)])

    def _embed(self, images: list[np.ndarray]) -> list[ImageEmbedding]:
        batch = torch.stack([preprocess_image(image, self.model.image_size) for image in images]).to(self.device)
        with self.inference():
            features = self.model.encode_image(batch)
            embeddings = features.vision + self.model.no_mem_embed.view(1, -1, 1, 1)
        return [
            ImageEmbedding(embeddings[i : i + 1], [level[i : i + 1] for level in features.high_res], image.shape[:2])
            for i, image in enumerate(images)
        ]

    def get_image_embedding(self) -> torch.Tensor:
        """The (N, C, h, w) embeddings of the N images set (C = 256, h = w = image_size / 16)."""
        self._require_image()
        return torch.cat([image.embedding for image in self._images])

    def _require_image(self) -> None:
        if not self._images:
            raise RuntimeError("no image is set: call set_image(image) (or set_image_batch(images)) first")

    # ---------------------------------------------------------------- prompts
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks of the image set by `set_image` for the prompts: (masks, iou_predictions, low_res_masks).

        Points (N, 2) with labels (N,), a box (4,), a previous low-resolution mask (1, S/4, S/4); a leading batch
        dimension B on the prompts predicts B objects at once. Returns masks (C, H, W) float32 0/1 (logits with
        `return_logits`), their predicted IoUs (C,) and low-resolution logits (C, S/4, S/4) to pass back as
        `mask_input`, with C = 3 for `multimask_output` else 1 (and a leading B for batched prompts).
        """
        self._require_image()
        if len(self._images) > 1:
            raise RuntimeError(f"{len(self._images)} images are set: use predict_batch, or set_image for one image")
        return self._predict_numpy(
            0, point_coords, point_labels, box, mask_input, multimask_output, return_logits, normalize_coords
        )

    def predict_batch(
        self,
        point_coords_batch: list[np.ndarray] | None = None,
        point_labels_batch: list[np.ndarray] | None = None,
        box_batch: list[np.ndarray] | None = None,
        mask_input_batch: list[np.ndarray] | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """`predict` for each image set by `set_image_batch`, with one entry per image in each prompt list."""
        self._require_image()
        count = len(self._images)
        prompt_lists = {
            "point_coords_batch": point_coords_batch,
            "point_labels_batch": point_labels_batch,
            "box_batch": box_batch,
            "mask_input_batch": mask_input_batch,
        }
        for name, values in prompt_lists.items():
            if values is not None and len(values) != count:
                raise ValueError(f"{name} has {len(values)} entries for {count} images set: pass one per image")
        results: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
        for index in range(count):
            prompts = [None if values is None else values[index] for values in prompt_lists.values()]
            outputs = self._predict_numpy(index, *prompts, multimask_output, return_logits, normalize_coords)
            for collected, output in zip(results, outputs):
                collected.append(output)
        return results

    def _predict_numpy(
        self,
        image_index: int,
        point_coords: np.ndarray | None,
        point_labels: np.ndarray | None,
        box: np.ndarray | None,
        mask_input: np.ndarray | None,
        multimask_output: bool,
        return_logits: bool,
        normalize_coords: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        coords, labels, boxes, masks_in = self._prompt_tensors(
            image_index, point_coords, point_labels, box, mask_input, normalize_coords
        )
        masks, ious, low_res = self.predict_torch(
            coords, labels, boxes, masks_in, multimask_output, return_logits, image_index=image_index
        )
        return tuple(t.squeeze(0).float().cpu().numpy() for t in (masks, ious, low_res))

    def to_model_coords(
        self, coords: torch.Tensor, normalize_coords: bool = True, image_index: int = 0
    ) -> torch.Tensor:
        """(..., 2) x, y in image pixels (or in [0, 1] without `normalize_coords`) as model-input pixels."""
        if normalize_coords:
            height, width = self._images[image_index].image_hw
            coords = coords.clone()
            coords[..., 0] = coords[..., 0] / width
            coords[..., 1] = coords[..., 1] / height
        return coords * self.model.image_size

    def _prompt_tensors(
        self,
        image_index: int,
        point_coords: np.ndarray | None,
        point_labels: np.ndarray | None,
        box: np.ndarray | None,
        mask_input: np.ndarray | None,
        normalize_coords: bool,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Checked prompts as model-input tensors: points (B, N, 2), labels (B, N), boxes (B, 4), masks (B, 1, h, w)."""
        coords = labels = boxes = masks = None
        if (point_coords is None) != (point_labels is None):
            raise ValueError("point_coords and point_labels go together: pass both (labels 1 object, 0 background)")
        if point_coords is not None:
            coords = torch.as_tensor(np.asarray(point_coords), dtype=torch.float32, device=self.device)
            labels = torch.as_tensor(np.asarray(point_labels), device=self.device)
            if coords.ndim not in (2, 3) or coords.shape[-1] != 2:
                raise ValueError(f"point_coords has shape {tuple(coords.shape)}; expected (N, 2) or (B, N, 2) x, y")
            if tuple(labels.shape) != tuple(coords.shape[:-1]):
                raise ValueError(
                    f"point_labels has shape {tuple(labels.shape)} for point_coords of shape {tuple(coords.shape)}; "
                    f"expected {tuple(coords.shape[:-1])}: one label per point"
                )
            _finite(coords, "point_coords")
            if labels.is_floating_point() and not bool((labels == labels.round()).all()):
                raise ValueError("point_labels must be integers: 1 for object points, 0 for background points")
            labels = labels.to(torch.int32)
            if not bool(((labels == 0) | (labels == 1)).all()):
                raise ValueError(
                    f"point_labels hold {sorted(set(labels.flatten().tolist()) - {0, 1})}; use 1 for object points "
                    "and 0 for background points (boxes go in box=)"
                )
            coords = self.to_model_coords(coords, normalize_coords, image_index)
            if coords.ndim == 2:
                coords, labels = coords[None], labels[None]
        if box is not None:
            boxes = torch.as_tensor(np.asarray(box), dtype=torch.float32, device=self.device)
            if boxes.ndim not in (1, 2) or boxes.shape[-1] != 4:
                raise ValueError(f"box has shape {tuple(boxes.shape)}; expected (4,) or (B, 4) as x0, y0, x1, y1")
            boxes = boxes.reshape(-1, 4)
            _finite(boxes, "box")
            inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
            if bool(inverted.any()):
                raise ValueError(
                    f"box {boxes[inverted][0].tolist()} has x1 < x0 or y1 < y0; boxes are x0, y0, x1, y1 with the "
                    "top-left corner first"
                )
            boxes = self.to_model_coords(boxes.reshape(-1, 2, 2), normalize_coords, image_index).reshape(-1, 4)
            if coords is not None and coords.shape[0] != boxes.shape[0]:
                raise ValueError(
                    f"{boxes.shape[0]} boxes and {coords.shape[0]} point sets: batched prompts need one box per "
                    "point set"
                )
        if mask_input is not None:
            masks = torch.as_tensor(np.asarray(mask_input), dtype=torch.float32, device=self.device)
            size = tuple(self.model.sam_prompt_encoder.mask_input_size)
            if masks.ndim == 3:
                masks = masks[None]
            if masks.ndim != 4 or masks.shape[1] != 1 or tuple(masks.shape[-2:]) != size:
                raise ValueError(
                    f"mask_input has shape {tuple(np.shape(mask_input))}; expected (1, {size[0]}, {size[1]}) or "
                    f"(B, 1, {size[0]}, {size[1]}) low-resolution logits, as predict returns in low_res_masks"
                )
            if not bool(torch.isfinite(masks).all()):
                raise ValueError("mask_input holds NaN or infinite values; pass the low_res_masks predict returned")
        return coords, labels, boxes, masks

    def predict_low_res(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        image_index: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution mask logits (B, C, S/4, S/4) and IoU predictions (B, C) for prompts already in
        model-input pixels (see `to_model_coords`): points (B, N, 2) and labels (B, N), boxes (B, 4), masks
        (B, 1, S/4, S/4)."""
        self._require_image()
        image = self._images[image_index]
        if boxes is not None:
            corners = boxes.reshape(-1, 2, 2)
            corner_labels = torch.tensor([BOX_CORNER_LABELS], dtype=torch.int32, device=corners.device)
            corner_labels = corner_labels.expand(corners.shape[0], -1)
            if point_coords is None:
                point_coords, point_labels = corners, corner_labels
            else:  # box corners go first, as in Meta's predictor
                point_coords = torch.cat([corners, point_coords], dim=1)
                point_labels = torch.cat([corner_labels, point_labels], dim=1)
        points = None if point_coords is None else (point_coords, point_labels)
        with self.inference():
            sparse, dense = self.model.sam_prompt_encoder(points=points, boxes=None, masks=mask_input)
            masks, ious, _, _ = self.model.sam_mask_decoder(
                image_embeddings=image.embedding,
                image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask_output,
                repeat_image=sparse.shape[0] > 1,
                high_res_features=image.high_res,
            )
        return masks.float(), ious.float()

    def predict_torch(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        image_index: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`predict` on tensors in model-input pixels: masks (B, C, H, W), IoUs (B, C), low-res logits."""
        low_res, ious = self.predict_low_res(
            point_coords, point_labels, boxes, mask_input, multimask_output, image_index
        )
        masks = postprocess_masks(
            low_res,
            self._images[image_index].image_hw,
            self.mask_threshold,
            self.max_hole_area,
            self.max_sprinkle_area,
        )
        if not return_logits:
            masks = masks > self.mask_threshold
        return masks, ious, low_res.clamp(-LOW_RES_LOGIT_LIMIT, LOW_RES_LOGIT_LIMIT)
