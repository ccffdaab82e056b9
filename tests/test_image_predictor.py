"""The image predictor's inputs: image types and conversion, prompt checks, shapes of results (small random model)."""

from __future__ import annotations

import numpy as np
import pytest
from random_checkpoint import CONFIG, IMAGE_SIZE, write_random_checkpoint
from skimage import data

from sam2_plugins.frames import image_to_rgb_uint8
from sam2_plugins.model import Sam2ImagePredictor


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Sam2ImagePredictor:
    checkpoint = write_random_checkpoint(tmp_path_factory.mktemp("checkpoint"))
    predictor = Sam2ImagePredictor.from_checkpoint(checkpoint, config=CONFIG, image_size=IMAGE_SIZE, device="cpu")
    predictor.set_image(data.astronaut()[::4, ::4])  # 128 x 128
    return predictor


def test_results_have_meta_s_shapes_and_types(predictor):
    masks, ious, low_res = predictor.predict(point_coords=np.array([[60, 40]]), point_labels=np.array([1]))
    assert masks.shape == (3, 128, 128) and masks.dtype == np.float32
    assert set(np.unique(masks)) <= {0.0, 1.0}
    assert ious.shape == (3,) and low_res.shape == (3, IMAGE_SIZE // 4, IMAGE_SIZE // 4)
    masks, ious, low_res = predictor.predict(box=np.array([[10, 10, 90, 100], [0, 0, 50, 50]]), multimask_output=False)
    assert masks.shape == (2, 1, 128, 128) and ious.shape == (2, 1) and low_res.shape == (2, 1, 32, 32)
    assert np.abs(low_res).max() <= 32.0


def test_grayscale_is_the_gray_image_repeated(tmp_path_factory, predictor):
    other = Sam2ImagePredictor(predictor.model, device="cpu")
    gray = data.camera()[::4, ::4]
    other.set_image(gray)
    gray_result = other.predict(box=np.array([20, 20, 100, 110]))
    other.set_image(np.repeat(gray[:, :, None], 3, axis=2))
    for gray_value, rgb_value in zip(gray_result, other.predict(box=np.array([20, 20, 100, 110]))):
        np.testing.assert_array_equal(gray_value, rgb_value)


def test_non_uint8_images_are_refused_with_the_conversion_to_use(predictor):
    other = Sam2ImagePredictor(predictor.model, device="cpu")
    sixteen_bit = (data.camera()[::4, ::4].astype(np.uint16) * 200 + 1000).astype(np.uint16)
    with pytest.raises(TypeError, match=r"uint16.*image_to_rgb_uint8"):
        other.set_image(sixteen_bit)
    with pytest.raises(TypeError, match=r"float64.*image_to_rgb_uint8"):
        other.set_image_batch([data.astronaut()[::4, ::4], sixteen_bit / 7.0])
    with pytest.raises(ValueError, match=r"\(128, 128, 4\).*image_to_rgb_uint8"):
        other.set_image(np.zeros((128, 128, 4), np.uint8))
    converted = image_to_rgb_uint8(sixteen_bit)
    assert converted.shape == (128, 128, 3) and converted.dtype == np.uint8
    assert converted.min() == 0 and converted.max() == 255  # the 0.5th/99.5th percentiles map to 0 and 255
    other.set_image(converted)
    assert other.image_sizes == [(128, 128)]


def test_image_to_rgb_uint8_follows_the_frame_sources_rule():
    """One image converts exactly like a one-frame array source; uint8 RGB is kept as it is."""
    from sam2_plugins.frames import open_frames

    rng = np.random.default_rng(0)
    float_image = rng.normal(size=(40, 50)).astype(np.float32)
    float_image[3, 4] = np.nan
    np.testing.assert_array_equal(image_to_rgb_uint8(float_image), open_frames(float_image[None])[0])
    channels_first = rng.integers(0, 4096, size=(3, 40, 50), dtype=np.uint16)
    np.testing.assert_array_equal(image_to_rgb_uint8(channels_first), open_frames(channels_first[None])[0])
    rgb = data.astronaut()
    np.testing.assert_array_equal(image_to_rgb_uint8(rgb), rgb)


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        ({"point_coords": np.array([[np.nan, 3.0]]), "point_labels": np.array([1])}, "NaN or infinite"),
        ({"point_coords": np.array([[np.inf, 3.0]]), "point_labels": np.array([1])}, "NaN or infinite"),
        ({"point_coords": np.array([[5.0, 3.0]]), "point_labels": np.array([2])}, r"point_labels hold \[2\]"),
        ({"point_coords": np.array([[5.0, 3.0]]), "point_labels": np.array([-1])}, r"point_labels hold \[-1\]"),
        ({"point_coords": np.array([[5.0, 3.0]]), "point_labels": np.array([0.5])}, "must be integers"),
        ({"point_coords": np.array([[5.0, 3.0]])}, "go together"),
        ({"point_labels": np.array([1])}, "go together"),
        ({"point_coords": np.array([5.0, 3.0]), "point_labels": np.array([1])}, r"expected \(N, 2\)"),
        ({"point_coords": np.array([[5.0, 3.0, 1.0]]), "point_labels": np.array([1])}, r"expected \(N, 2\)"),
        ({"point_coords": np.array([[5.0, 3.0], [6, 7]]), "point_labels": np.array([1])}, "one label per point"),
        ({"box": np.array([50.0, 10.0, 20.0, 60.0])}, "x1 < x0"),
        ({"box": np.array([10.0, 60.0, 50.0, 20.0])}, "y1 < y0"),
        ({"box": np.array([10.0, 20.0, 50.0])}, r"expected \(4,\)"),
        ({"box": np.array([10.0, np.nan, 50.0, 60.0])}, "NaN or infinite"),
        (
            {"point_coords": np.zeros((3, 1, 2)), "point_labels": np.ones((3, 1)), "box": np.zeros((2, 4))},
            "one box per point set",
        ),
        ({"mask_input": np.zeros((1, 64, 64))}, r"expected \(1, 32, 32\)"),
        ({"mask_input": np.full((1, 32, 32), np.nan)}, "NaN or infinite"),
    ],
)
def test_bad_prompts_get_clear_errors(predictor, prompts, message):
    with pytest.raises(ValueError, match=message):
        predictor.predict(**prompts)


def test_prediction_needs_an_image_and_one_prompt_list_entry_per_image(predictor):
    other = Sam2ImagePredictor(predictor.model, device="cpu")
    with pytest.raises(RuntimeError, match="no image is set"):
        other.predict(box=np.array([0, 0, 10, 10]))
    images = [data.astronaut()[::4, ::4], data.chelsea()[::3, ::3]]
    other.set_image_batch(images)
    assert other.image_sizes == [(128, 128), (100, 151)]
    with pytest.raises(RuntimeError, match="use predict_batch"):
        other.predict(box=np.array([0, 0, 10, 10]))
    with pytest.raises(ValueError, match="box_batch has 1 entries for 2 images"):
        other.predict_batch(box_batch=[np.array([0, 0, 10, 10])])
    masks, _, _ = other.predict_batch(box_batch=[np.array([0, 0, 10, 10]), np.array([5, 5, 80, 60])])
    assert [m.shape for m in masks] == [(3, 128, 128), (3, 100, 151)]
    other.reset_predictor()
    assert not other.is_image_set
