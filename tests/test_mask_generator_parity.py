"""Our automatic mask generator against Meta's `SAM2AutomaticMaskGenerator` (sam2 1.1.0), whole and stage by stage.

Random weights give nearly image-wide masks that NMS reduces to one, so the whole-generator cases keep duplicates
(NMS threshold 1.0) to compare many records and their order; the stages are compared on crafted masks, many of them
overlapping, with holes and specks.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision_standin
from image_parity import MIN_IOU, PARITY_MARKS, SCORE_TOLERANCE, reference_and_ours, reference_transforms
from scipy import ndimage
from skimage import data

from sam2_plugins.model import Sam2AutomaticMaskGenerator
from sam2_plugins.model import amg as ours_amg
from sam2_plugins.model.image_predictor import postprocess_masks

torchvision_standin.install()
reference_generator = pytest.importorskip("sam2.automatic_mask_generator")
reference_amg = pytest.importorskip("sam2.utils.amg")
reference_misc = pytest.importorskip("sam2.utils.misc")

pytestmark = PARITY_MARKS


def connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU stand-in for the reference's CUDA kernel: 8-connected labels and each pixel's component area."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    areas = np.zeros(mask.shape, dtype=np.int32)
    for index in np.ndindex(mask.shape[:2]):
        labels[index], _ = ndimage.label(mask[index].numpy(), structure=np.ones((3, 3)))
        sizes = np.bincount(labels[index].ravel())
        sizes[0] = 0
        areas[index] = sizes[labels[index]]
    return torch.from_numpy(labels), torch.from_numpy(areas)


@pytest.fixture(scope="module", autouse=True)
def reference_connected_components():
    """The reference fills holes and removes specks with a CUDA extension it skips on CPU: give it a CPU one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reference_misc, "get_connected_components", connected_components)
        yield


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Meta's model and our predictor holding the same seeded random weights (SAM 2.1 tiny, 1024 px)."""
    reference, ours = reference_and_ours(tmp_path_factory, seed=1)
    embeddings = {}

    def remembering_set_image(predictor):
        """The reference's set_image, run once per distinct crop (it is deterministic): fewer slow encodes."""
        original = predictor.set_image

        def set_image(image):
            key = hashlib.sha1(np.ascontiguousarray(image).tobytes() + str(image.shape).encode()).hexdigest()
            if key not in embeddings:
                original(image)
                embeddings[key] = (predictor._features, predictor._orig_hw)
            predictor.reset_predictor()
            predictor._features, predictor._orig_hw = embeddings[key]
            predictor._is_image_set = True

        predictor.set_image = set_image

    def reference_generator_with(**options):
        generator = reference_generator.SAM2AutomaticMaskGenerator(reference.model, **options)
        remembering_set_image(generator.predictor)
        return generator

    return reference_generator_with, ours


def assert_same_records(expected: list[dict], actual: list[dict], output_mode: str, min_records: int = 2) -> None:
    assert len(actual) == len(expected), "number of records"
    assert len(expected) >= min_records, "too few records to test their order"
    for index, (reference_record, our_record) in enumerate(zip(expected, actual)):
        assert our_record.keys() == reference_record.keys()
        if output_mode == "binary_mask":
            reference_mask, our_mask = reference_record["segmentation"], our_record["segmentation"]
        elif output_mode == "uncompressed_rle":
            reference_mask = reference_amg.rle_to_mask(reference_record["segmentation"])
            our_mask = reference_amg.rle_to_mask(our_record["segmentation"])
        else:
            from pycocotools import mask as mask_utils

            reference_mask = mask_utils.decode(reference_record["segmentation"]).astype(bool)
            our_mask = mask_utils.decode(our_record["segmentation"]).astype(bool)
        assert our_mask.shape == reference_mask.shape and our_mask.dtype == reference_mask.dtype
        iou = (our_mask & reference_mask).sum() / max((our_mask | reference_mask).sum(), 1)
        assert iou >= MIN_IOU, f"record {index}: mask IoU {iou}"
        for key in ("predicted_iou", "stability_score"):
            assert abs(our_record[key] - reference_record[key]) <= SCORE_TOLERANCE, f"record {index}: {key}"
        for key in ("point_coords", "crop_box"):
            assert our_record[key] == reference_record[key], f"record {index}: {key}"
        np.testing.assert_allclose(our_record["bbox"], reference_record["bbox"], atol=2, err_msg=f"record {index}")
        assert abs(our_record["area"] - reference_record["area"]) <= (1 - MIN_IOU) * reference_record["area"]


GENERATOR_CASES = {
    "grid of clicks": (
        data.astronaut,
        {
            "points_per_side": 8,
            "pred_iou_thresh": 0.45,
            "stability_score_thresh": 0.3,
            "stability_score_offset": 0.02,  # random weights give logits within +-0.2
            "box_nms_thresh": 1.0,
        },
    ),
    "refined single masks, holes and specks filled, COCO RLE": (
        data.chelsea,
        {
            "points_per_side": 6,
            "points_per_batch": 16,
            "pred_iou_thresh": 0.0,
            "stability_score_thresh": 0.0,
            "box_nms_thresh": 1.0,
            "use_m2m": True,
            "multimask_output": False,
            "min_mask_region_area": 300,
            "mask_threshold": 0.02,
            "stability_score_offset": 0.02,
            "output_mode": "coco_rle",
        },
    ),
    "crop layer, explicit grids, uncompressed RLE": (
        data.astronaut,
        {
            "points_per_side": None,
            "point_grids": [np.array([[0.5, 0.5], [0.2, 0.7], [0.9, 0.1]]), np.array([[0.5, 0.5], [0.1, 0.1]])],
            "crop_n_layers": 1,
            "pred_iou_thresh": 0.0,
            "stability_score_thresh": 0.0,
            "box_nms_thresh": 1.0,
            "crop_nms_thresh": 1.0,
            "output_mode": "uncompressed_rle",
        },
    ),
}


def test_the_generator_with_default_thresholds_matches_the_reference(models):
    """Meta's defaults (IoU 0.8, stability 0.95, NMS 0.7) at 4 x 4 points; random weights may leave few masks;
    first, so that the next case finds both embeddings of the photo ready."""
    reference_generator_with, ours = models
    image = data.astronaut()
    expected = reference_generator_with(points_per_side=4).generate(image)
    actual = Sam2AutomaticMaskGenerator(ours, points_per_side=4).generate(image)
    assert_same_records(expected, actual, "binary_mask", min_records=0)


@pytest.mark.parametrize("case", list(GENERATOR_CASES))
def test_the_generator_matches_the_reference(models, case):
    reference_generator_with, ours = models
    photo, options = GENERATOR_CASES[case]
    image = photo()
    expected = reference_generator_with(**options).generate(image)
    actual = Sam2AutomaticMaskGenerator(ours, **options).generate(image)
    assert_same_records(expected, actual, options.get("output_mode", "binary_mask"))


# ---------------------------------------------------------------- stages on crafted masks
@pytest.fixture(scope="module")
def crafted_logits() -> torch.Tensor:
    """60 mask-logit maps (96 x 128) of smooth random fields: overlapping blobs with holes and specks; plus an
    empty and a full one."""
    generator = torch.Generator().manual_seed(7)
    coarse = torch.randn(60, 1, 6, 8, generator=generator) * 8 + torch.linspace(-6, 6, 60)[:, None, None, None]
    fine = torch.randn(60, 1, 96, 128, generator=generator) * 2
    logits = F.interpolate(coarse, size=(96, 128), mode="bilinear", align_corners=False) + fine
    return torch.cat([logits[:, 0], torch.full((1, 96, 128), -5.0), torch.full((1, 96, 128), 5.0)])


@pytest.fixture(scope="module")
def crafted_masks(crafted_logits) -> torch.Tensor:
    return crafted_logits > 0


def test_point_grids_match_the_reference():
    for points_per_side in (1, 2, 5, 8, 32):
        np.testing.assert_array_equal(
            ours_amg.build_point_grid(points_per_side), reference_amg.build_point_grid(points_per_side)
        )
    for args in ((32, 0, 1), (16, 2, 2), (12, 2, 3), (7, 1, 1)):
        for ours, reference in zip(
            ours_amg.build_all_layer_point_grids(*args), reference_amg.build_all_layer_point_grids(*args), strict=True
        ):
            np.testing.assert_array_equal(ours, reference)


def test_crop_boxes_match_the_reference():
    for image_hw in ((512, 512), (300, 451), (1080, 1920), (37, 1000)):
        for layers in (0, 1, 2, 3):
            for overlap in (512 / 1500, 0.0, 0.5):
                expected = reference_amg.generate_crop_boxes(image_hw, layers, overlap)
                assert ours_amg.generate_crop_boxes(image_hw, layers, overlap) == expected


def test_stability_scores_match_the_reference(crafted_logits):
    for threshold, offset in ((0.0, 1.0), (0.5, 0.25), (-1.0, 2.0)):
        torch.testing.assert_close(
            ours_amg.stability_score(crafted_logits[:-1], threshold, offset),
            reference_amg.calculate_stability_score(crafted_logits[:-1], threshold, offset),
            atol=0,
            rtol=0,
            equal_nan=True,  # 0 / 0 for the empty mask, as the reference
        )


def test_mask_boxes_match_the_reference(crafted_masks):
    expected = reference_amg.batched_mask_to_box(crafted_masks)
    assert bool((expected[-2] == 0).all()), "the empty mask's box is zeros"
    torch.testing.assert_close(ours_amg.masks_to_boxes(crafted_masks), expected, atol=0, rtol=0)
    grouped = crafted_masks[:60].reshape(4, 15, 96, 128)
    torch.testing.assert_close(ours_amg.masks_to_boxes(grouped), reference_amg.batched_mask_to_box(grouped))


def test_nms_matches_torchvision_s_rule(crafted_masks):
    """Many overlapping boxes, with tied scores (as the crop NMS has), at several thresholds."""
    boxes = ours_amg.masks_to_boxes(crafted_masks).float()
    generator = torch.Generator().manual_seed(3)
    jittered = boxes + torch.randint(-6, 7, boxes.shape, generator=generator)
    boxes = torch.cat([boxes, jittered])
    scores = torch.rand(len(boxes), generator=generator)
    tied = (scores * 4).floor()
    for score in (scores, tied):
        for threshold in (0.3, 0.7, 0.9, 1.0):
            expected = torchvision_standin.batched_nms(boxes, score, torch.zeros(len(boxes)), threshold)
            actual = ours_amg.nms(boxes, score, threshold)
            assert actual.tolist() == expected.tolist()
            assert 1 < len(actual) <= len(boxes)
    two_boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0]])  # IoU 90 / 110
    assert ours_amg.nms(two_boxes, torch.tensor([0.2, 0.9]), 0.8).tolist() == [1]
    assert ours_amg.nms(two_boxes, torch.tensor([0.2, 0.9]), 0.85).tolist() == [1, 0]


def test_edge_filter_and_uncropping_match_the_reference(crafted_masks):
    boxes = ours_amg.masks_to_boxes(crafted_masks)
    points = torch.rand(len(boxes), 2) * 90
    for crop_box in ([0, 0, 128, 96], [40, 30, 168, 126], [0, 25, 128, 121]):
        image_box = [0, 0, 300, 200]
        assert torch.equal(
            ours_amg.is_box_near_crop_edge(boxes, crop_box, image_box),
            reference_amg.is_box_near_crop_edge(boxes, crop_box, image_box),
        )
        assert torch.equal(ours_amg.uncrop_boxes(boxes, crop_box), reference_amg.uncrop_boxes_xyxy(boxes, crop_box))
        assert torch.equal(ours_amg.uncrop_points(points, crop_box), reference_amg.uncrop_points(points, crop_box))
        for image_h, image_w in ((96, 128), (200, 300)):
            if crop_box[2] <= image_w and crop_box[3] <= image_h:
                assert torch.equal(
                    ours_amg.uncrop_masks(crafted_masks, crop_box, image_h, image_w),
                    reference_amg.uncrop_masks(crafted_masks, crop_box, image_h, image_w),
                )


def test_rle_matches_the_reference(crafted_masks):
    expected = reference_amg.mask_to_rle_pytorch(crafted_masks)
    actual = ours_amg.masks_to_rle(crafted_masks)
    assert actual == expected
    assert ours_amg.masks_to_rle(crafted_masks[:0]) == []
    for rle, mask in zip(actual, crafted_masks.numpy()):
        np.testing.assert_array_equal(ours_amg.rle_to_mask(rle), reference_amg.rle_to_mask(rle))
        np.testing.assert_array_equal(ours_amg.rle_to_mask(rle), mask)
        assert ours_amg.rle_area(rle) == reference_amg.area_from_rle(rle) == int(mask.sum())
        assert ours_amg.coco_rle(rle) == reference_amg.coco_encode_rle(rle)


def test_small_region_removal_matches_the_reference(crafted_masks):
    changed = 0
    for mask in crafted_masks.numpy():
        for mode in ("holes", "islands"):
            for area in (1, 20, 150.5, 5000):
                expected_mask, expected_changed = reference_amg.remove_small_regions(mask, area, mode)
                actual_mask, actual_changed = ours_amg.remove_small_regions(mask, area, mode)
                np.testing.assert_array_equal(actual_mask, expected_mask)
                assert actual_changed == expected_changed
                changed += actual_changed
    assert changed > 50


def test_small_region_postprocessing_matches_the_reference(crafted_masks):
    """Meta's optional clean-up (holes and islands, then NMS preferring unchanged masks) on the same table."""
    rles = reference_amg.mask_to_rle_pytorch(crafted_masks)
    boxes = reference_amg.batched_mask_to_box(crafted_masks)
    expected = reference_generator.SAM2AutomaticMaskGenerator.postprocess_small_regions(
        reference_amg.MaskData(rles=list(rles), boxes=boxes.clone()), 40, 0.7
    )
    actual = Sam2AutomaticMaskGenerator.postprocess_small_regions(
        ours_amg.MaskTable(rles=list(rles), boxes=boxes.clone()), 40, 0.7
    )
    assert actual["rles"] == expected["rles"]
    assert torch.equal(actual["boxes"], expected["boxes"])
    assert 1 < len(actual) < len(rles)


def test_low_res_hole_filling_and_speck_removal_match_the_reference(crafted_logits):
    """The generator's `min_mask_region_area` acts on low-resolution masks as the reference's predictor does."""
    low_res = crafted_logits[:, None, :64, :64]
    for threshold, holes, specks in ((0.0, 30, 0), (0.0, 0, 30), (0.5, 25, 40)):
        transforms = reference_transforms.SAM2Transforms(1024, threshold, holes, specks)
        expected = transforms.postprocess_masks(low_res, (150, 170))
        actual = postprocess_masks(low_res, (150, 170), threshold, holes, specks)
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)
        assert not torch.equal(actual, postprocess_masks(low_res, (150, 170), threshold))
