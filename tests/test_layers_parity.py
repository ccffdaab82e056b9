"""Shared layers and position encodings against their counterparts in Meta's reference package."""

from __future__ import annotations

import pytest
import torch
from sam2.modeling import position_encoding as reference_pe
from sam2.modeling import sam2_utils as reference_utils

from sam2_plugins.model.common import MLP, LayerNorm2d, activation_by_name
from sam2_plugins.model.position_encoding import PositionEmbeddingRandom, PositionEmbeddingSine, sine_encoding_1d

pytestmark = pytest.mark.parity


def seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("num_pos_feats", "height", "width"), [(256, 32, 32), (64, 12, 20)])
def test_sine_encoding_2d(num_pos_feats: int, height: int, width: int) -> None:
    feature_map = torch.zeros(2, 5, height, width)
    expected = reference_pe.PositionEmbeddingSine(num_pos_feats, warmup_cache=False)(feature_map)
    encoding = PositionEmbeddingSine(num_pos_feats)
    torch.testing.assert_close(encoding(feature_map), expected, atol=1e-6, rtol=0)
    encoding(feature_map)[0].zero_()  # a caller writing into its copy must not change the cached encoding
    torch.testing.assert_close(encoding(feature_map), expected, atol=1e-6, rtol=0)


def test_random_fourier_encoding() -> None:
    reference = reference_pe.PositionEmbeddingRandom(128, scale=2.0)
    ours = PositionEmbeddingRandom(128)
    ours.load_state_dict(reference.state_dict())
    torch.testing.assert_close(ours((16, 24)), reference((16, 24)), atol=1e-6, rtol=0)
    clicks = torch.rand(3, 4, 2, generator=torch.Generator().manual_seed(1)) * 500
    expected = reference.forward_with_coords(clicks, (512, 384))
    torch.testing.assert_close(ours.forward_with_coords(clicks, (512, 384)), expected, atol=1e-6, rtol=0)


def test_sine_encoding_1d() -> None:
    positions = torch.arange(7, dtype=torch.float32) / 6
    expected = reference_utils.get_1d_sine_pe(positions, dim=64)
    torch.testing.assert_close(sine_encoding_1d(positions, dim=64), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("sigmoid_output", [False, True])
def test_mlp(sigmoid_output: bool) -> None:
    reference = reference_utils.MLP(8, 16, 4, num_layers=3, sigmoid_output=sigmoid_output)
    ours = MLP(8, 16, 4, num_layers=3, sigmoid_output=sigmoid_output)
    ours.load_state_dict(reference.state_dict())
    inputs = seeded(5, 8)
    torch.testing.assert_close(ours(inputs), reference(inputs), atol=1e-6, rtol=0)


def test_layer_norm_2d() -> None:
    reference = reference_utils.LayerNorm2d(6)
    reference.load_state_dict({"weight": seeded(6, seed=1), "bias": seeded(6, seed=2)})
    ours = LayerNorm2d(6)
    ours.load_state_dict(reference.state_dict())
    inputs = seeded(2, 6, 5, 7, seed=3) * 3 + 1
    torch.testing.assert_close(ours(inputs), reference(inputs), atol=1e-6, rtol=0)


def test_activation_by_name() -> None:
    inputs = seeded(4, 6)
    for name in ("relu", "gelu", "glu"):
        torch.testing.assert_close(activation_by_name(name)(inputs), reference_utils.get_activation_fn(name)(inputs))
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        activation_by_name("swish")
