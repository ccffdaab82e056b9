"""The mask generator's parameters, record formats and embedding reuse (small random model; parity is elsewhere)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from random_checkpoint import CONFIG, IMAGE_SIZE, write_random_checkpoint
from skimage import data

from sam2_plugins.model import Sam2AutomaticMaskGenerator, Sam2ImagePredictor
from sam2_plugins.model.amg import rle_to_mask

PERMISSIVE = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture(scope="module")
def predictor(checkpoint) -> Sam2ImagePredictor:
    return Sam2ImagePredictor.from_checkpoint(checkpoint, config=CONFIG, image_size=IMAGE_SIZE, device="cpu")


@pytest.fixture
def encodes(predictor, monkeypatch) -> list[int]:
    """How many images the model encodes (one entry per encoder call)."""
    calls = []
    original = predictor.model.encode_image

    def counting(images):
        calls.append(len(images))
        return original(images)

    monkeypatch.setattr(predictor.model, "encode_image", counting)
    return calls


def test_records_in_every_output_mode_describe_the_same_masks(predictor):
    image = data.chelsea()[::3, ::3]  # 100 x 151
    records = {
        mode: Sam2AutomaticMaskGenerator(predictor, points_per_side=3, output_mode=mode, **PERMISSIVE).generate(image)
        for mode in ("binary_mask", "uncompressed_rle", "coco_rle")
    }
    assert len(records["binary_mask"]) == 27  # 9 clicks x 3 masks, no NMS
    for binary, uncompressed, coco in zip(*records.values()):
        mask = binary["segmentation"]
        assert mask.shape == (100, 151) and mask.dtype == bool
        np.testing.assert_array_equal(rle_to_mask(uncompressed["segmentation"]), mask)
        np.testing.assert_array_equal(mask_utils.decode(coco["segmentation"]).astype(bool), mask)
        assert isinstance(coco["segmentation"]["counts"], str)
        assert binary["area"] == int(mask.sum()) and isinstance(binary["area"], int)
        rows, cols = np.nonzero(mask)
        assert binary["bbox"] == [cols.min(), rows.min(), cols.max() - cols.min(), rows.max() - rows.min()]
        assert binary["crop_box"] == [0.0, 0.0, 151.0, 100.0]
        assert len(binary["point_coords"]) == 1 and len(binary["point_coords"][0]) == 2
        for key in ("predicted_iou", "stability_score"):
            assert isinstance(binary[key], float) and binary[key] == uncompressed[key] == coco[key]
    ious = [record["predicted_iou"] for record in records["binary_mask"]]
    assert ious == sorted(ious, reverse=True), "NMS returns the records best first"


def test_the_image_embedding_is_reused(predictor, encodes):
    """A generate after set_image (or another generate) on the same pixels encodes nothing; crops are encoded
    once each per generate, and the predictor is left without a crop set."""
    image = data.astronaut()[::4, ::4]
    predictor.set_image(image)
    Sam2AutomaticMaskGenerator(predictor, points_per_side=4).generate(image.copy())
    Sam2AutomaticMaskGenerator(predictor, points_per_side=2, points_per_batch=1).generate(image)
    assert encodes == [1]
    predictor.predict(box=np.array([10, 10, 60, 90]))
    assert encodes == [1]
    Sam2AutomaticMaskGenerator(predictor, points_per_side=2, crop_n_layers=1).generate(image)
    assert encodes == [1, 1, 1, 1, 1]  # the 4 crops of layer 1; the whole image was set
    assert not predictor.is_image_set
    Sam2AutomaticMaskGenerator(predictor, points_per_side=2).generate(np.ascontiguousarray(image[::-1]))
    assert len(encodes) == 6


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"points_per_side": None}, ValueError, "exactly one of points_per_side"),
        ({"point_grids": [np.zeros((4, 2))]}, ValueError, "exactly one of points_per_side"),
        ({"points_per_side": None, "point_grids": [np.zeros((4, 3))]}, ValueError, r"grids are \(N, 2\)"),
        ({"points_per_side": None, "point_grids": [np.zeros((4, 2))], "crop_n_layers": 1}, ValueError, "one grid per"),
        ({"points_per_side": 4, "crop_n_layers": 2, "crop_n_points_downscale_factor": 4}, ValueError, "without points"),
        ({"output_mode": "polygons"}, ValueError, "not one of binary_mask"),
        ({"points_per_batch": 0}, ValueError, "points_per_batch"),
        ({"crop_n_layers": -1}, ValueError, "crop_n_layers"),
    ],
)
def test_bad_parameters_get_clear_errors(predictor, options, error, message):
    with pytest.raises(error, match=message):
        Sam2AutomaticMaskGenerator(predictor, **options)


def test_the_generator_needs_an_image_predictor_and_uint8_images(predictor):
    with pytest.raises(TypeError, match="pass a Sam2ImagePredictor"):
        Sam2AutomaticMaskGenerator(predictor.model)
    with pytest.raises(TypeError, match="image_to_rgb_uint8"):
        Sam2AutomaticMaskGenerator(predictor, points_per_side=2).generate(np.zeros((64, 64), np.uint16))


def test_from_checkpoint_loads_a_predictor_and_takes_the_generator_s_parameters(checkpoint):
    generator = Sam2AutomaticMaskGenerator.from_checkpoint(
        checkpoint, config=CONFIG, image_size=IMAGE_SIZE, device="cpu", points_per_side=2, **PERMISSIVE
    )
    assert generator.predictor.model.image_size == IMAGE_SIZE and generator.box_nms_thresh == 1.0
    assert len(generator.generate(data.astronaut()[::4, ::4])) == 12  # 4 clicks x 3 masks
