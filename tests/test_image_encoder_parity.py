"""Image encoder (Hiera + FPN neck) against Meta's reference modules, built from the official configs."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sam2_plugins.model.hiera import Hiera, window_partition, window_unpartition
from sam2_plugins.model.image_encoder import FpnNeck, ImageEncoder
from sam2_plugins.model.position_encoding import PositionEmbeddingSine

pytestmark = pytest.mark.parity

OURS = {
    "sam2.modeling.backbones.image_encoder.ImageEncoder": ImageEncoder,
    "sam2.modeling.backbones.image_encoder.FpnNeck": FpnNeck,
    "sam2.modeling.backbones.hieradet.Hiera": Hiera,
    "sam2.modeling.position_encoding.PositionEmbeddingSine": PositionEmbeddingSine,
}


def official_encoder_config(config_name: str):
    """The `image_encoder` node of one of the reference package's YAML configs."""
    version = config_name.split("_")[0]  # the reference keeps each version's configs in a folder of that name
    path = files("sam2") / "configs" / version / f"{config_name}.yaml"
    return OmegaConf.load(str(path)).model.image_encoder


def build_ours(node):
    """Instantiate our classes from a Hydra node that names the reference ones."""
    if OmegaConf.is_dict(node) and "_target_" in node:
        kwargs = {key: build_ours(value) for key, value in node.items() if key != "_target_"}
        return OURS[node._target_](**kwargs)
    return OmegaConf.to_object(node) if OmegaConf.is_config(node) else node


def shared_random_pair(node, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(reference, ours) built from the same config node, holding the same random weights."""
    reference = instantiate(node, _convert_="all").eval()
    generator = torch.Generator().manual_seed(seed)
    weights = {
        key: torch.randn(value.shape, generator=generator) * 0.2 for key, value in reference.state_dict().items()
    }
    reference.load_state_dict(weights)
    ours = build_ours(node).eval()
    ours.load_state_dict(weights)
    return reference, ours


def assert_same_outputs(expected: dict, actual: dict) -> None:
    assert actual.keys() == expected.keys()
    torch.testing.assert_close(actual["vision_features"], expected["vision_features"], atol=1e-5, rtol=1e-5)
    for name in ("backbone_fpn", "vision_pos_enc"):
        assert len(actual[name]) == len(expected[name])
        for ours_level, reference_level in zip(actual[name], expected[name]):
            assert ours_level.shape == reference_level.shape
            torch.testing.assert_close(ours_level, reference_level, atol=1e-5, rtol=1e-5)


def test_tiny_encoder_matches_reference() -> None:
    # SAM 2.0 and 2.1 share this encoder config. At 256 px the 14- and 7-token windows of the last stages need
    # padding, as at 1024 px.
    reference, ours = shared_random_pair(official_encoder_config("sam2.1_hiera_t"), seed=3)
    images = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    assert [level.shape[-1] for level in actual["backbone_fpn"]] == [64, 32, 16]  # scalp drops stride 32
    assert_same_outputs(expected, actual)


def test_variant_encoder_matches_reference() -> None:
    """Base-plus widths and heads, 14x14 background embedding, large's windows, and the other neck options."""
    node = official_encoder_config("sam2.1_hiera_b+")
    node.trunk.stages = [1, 2, 3, 2]
    node.trunk.global_att_blocks = [4, 7]
    node.trunk.window_spec = [8, 4, 16, 8]
    node.neck.fpn_top_down_levels = None
    node.neck.fpn_interp_model = "bilinear"
    node.neck.fuse_type = "avg"
    node.scalp = 0
    reference, ours = shared_random_pair(node, seed=5)
    images = torch.randn(1, 3, 192, 192, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    assert len(actual["backbone_fpn"]) == 4
    assert_same_outputs(expected, actual)


def test_kept_position_embedding_follows_new_weights() -> None:
    """The trunk keeps its resized position embedding from frame to frame; loading other weights must refresh it."""
    node = official_encoder_config("sam2.1_hiera_t")
    _, ours = shared_random_pair(node, seed=3)
    reference, other = shared_random_pair(node, seed=7)
    images = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        ours(images)
        ours.load_state_dict(other.state_dict())
        assert_same_outputs(reference(images), ours(images))


def test_window_partition_round_trip_with_padding() -> None:
    tokens = torch.randn(2, 10, 13, 6)
    windows, padded = window_partition(tokens, 4)
    assert windows.shape == (2 * 3 * 4, 4, 4, 6) and padded == (12, 16)
    assert torch.equal(windows[0], tokens[0, :4, :4])
    assert torch.equal(windows[1], tokens[0, :4, 4:8])
    assert torch.equal(window_unpartition(windows, 4, padded, (10, 13)), tokens)


def test_image_size_not_a_multiple_of_the_window_is_a_clear_error() -> None:
    encoder = build_ours(official_encoder_config("sam2.1_hiera_t")).eval()
    with torch.no_grad(), pytest.raises(ValueError, match="multiple of 32"):
        encoder(torch.zeros(1, 3, 200, 200))


@pytest.mark.parametrize(
    "config_name",
    [
        "sam2.1_hiera_t",
        "sam2.1_hiera_s",
        "sam2.1_hiera_b+",
        "sam2.1_hiera_l",
        "sam2_hiera_t",
        "sam2_hiera_s",
        "sam2_hiera_b+",
        "sam2_hiera_l",
    ],
)
def test_state_dict_matches_official_checkpoint(config_name: str, shared_fixtures) -> None:
    official = json.loads((shared_fixtures / "sam2_state_dict_shapes.json").read_text())[config_name]
    expected = {key: shape for key, shape in official.items() if key.startswith("image_encoder.")}
    with torch.device("meta"):
        encoder = build_ours(official_encoder_config(config_name))
    actual = {f"image_encoder.{key}": list(value.shape) for key, value in encoder.state_dict().items()}
    assert actual == expected
