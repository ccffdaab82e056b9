"""`ModelSpec` and its loaders: one place that checks what to load and loads it for every front-end."""

from pathlib import Path

import numpy as np
import pytest
import torch
from random_checkpoint import CONFIG, IMAGE_SIZE, write_random_checkpoint

from sam2_plugins.model import Sam2AutomaticMaskGenerator, Sam2ImagePredictor, Sam2VideoPredictor
from sam2_plugins.model_loading import ModelSpec, load_image_predictor, load_mask_generator, load_video_predictor


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("weights"))


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"checkpoint": "/no/such/file.pt"}, "/no/such/file.pt: no such checkpoint"),
        ({"checkpoint": "sam3_hiera_tiny"}, "sam3_hiera_tiny: no such checkpoint"),
        ({"image_size": 500}, "image_size 500 is not a multiple of 32"),
        ({"image_size": 64}, "image_size 64"),
        ({"config": "hiera_huge"}, "config 'hiera_huge' is not a SAM 2 config"),
        ({"device": "gpu"}, "device 'gpu' is not a device"),
        ({"precision": "float16"}, "precision 'float16'"),
    ],
)
def test_a_wrong_value_is_an_error_naming_it_and_the_fix(options, named):
    with pytest.raises(ValueError, match="pass|give") as caught:
        ModelSpec(**options)
    assert named in str(caught.value)


def test_every_wrong_value_is_named_at_once():
    with pytest.raises(ValueError) as caught:
        ModelSpec(checkpoint="nothing.pt", image_size=100, device="tpu")
    assert "nothing.pt" in str(caught.value) and "image_size 100" in str(caught.value) and "'tpu'" in str(caught.value)


def test_auto_values_and_official_names_are_accepted_without_torch_work():
    spec = ModelSpec(config="configs/sam2.1/sam2.1_hiera_t.yaml", device=None)
    assert spec.checkpoint == "sam2.1_hiera_tiny" and spec.device == "auto"
    assert ModelSpec(config="auto").config is None
    assert ModelSpec(device="cuda:1").device == "cuda:1"


def test_image_size_defaults_to_the_devices(checkpoint):
    assert ModelSpec(checkpoint, device="cpu").model_image_size() == 512
    assert ModelSpec(checkpoint, device="cpu", image_size=256).model_image_size() == 256


@pytest.mark.parametrize("apply_postprocessing", [True, False])
def test_video_predictor_follows_the_spec(checkpoint, apply_postprocessing):
    spec = ModelSpec(
        str(checkpoint), CONFIG, IMAGE_SIZE, "cpu", precision="bfloat16", apply_postprocessing=apply_postprocessing
    )
    predictor = load_video_predictor(spec)
    assert isinstance(predictor, Sam2VideoPredictor)
    assert predictor.model.image_size == IMAGE_SIZE and predictor.device == torch.device("cpu")
    assert predictor.autocast_dtype == torch.bfloat16
    assert predictor.fill_hole_area == (8 if apply_postprocessing else 0)
    dynamic = predictor.model.sam_mask_decoder.dynamic_multimask_via_stability
    assert dynamic is apply_postprocessing


def test_image_predictor_and_mask_generator_share_a_loaded_network(checkpoint):
    spec = ModelSpec(str(checkpoint), image_size=IMAGE_SIZE, device="cpu")
    video = load_video_predictor(spec)
    image = load_image_predictor(video)
    assert isinstance(image, Sam2ImagePredictor) and image.model is video.model
    generator = load_mask_generator(video, points_per_side=4, pred_iou_thresh=0.0)
    assert isinstance(generator, Sam2AutomaticMaskGenerator) and generator.predictor.model is video.model
    own = load_mask_generator(spec, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    assert own.predictor.model is not video.model
    records = own.generate(np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8))
    assert all(record["segmentation"].shape == (40, 56) for record in records)
