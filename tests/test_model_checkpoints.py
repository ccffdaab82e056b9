"""Every official checkpoint's key set and shapes load strictly into the network built from its config."""

import pytest
import torch

from sam2_plugins.model.checkpoint import CheckpointError, load_weights
from sam2_plugins.model.configs import CONFIGS, build_model


def test_fixture_lists_the_eight_official_checkpoints(official_shapes):
    assert set(official_shapes) == set(CONFIGS)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_official_key_set_loads_strictly(official_state_dict, config):
    with torch.device("meta"):
        model = build_model(config, image_size=1024)
    load_weights(model, official_state_dict(config), source=f"{config}.pt", config=config)


def test_sam2_0_checkpoint_does_not_fit_a_sam2_1_model(official_state_dict):
    with torch.device("meta"):
        model = build_model("sam2.1_hiera_t", image_size=1024)
    with pytest.raises(CheckpointError, match="missing keys.*no_obj_embed_spatial"):
        load_weights(model, official_state_dict("sam2_hiera_t"), source="sam2_hiera_tiny.pt")


def test_image_size_does_not_change_the_checkpoint_shapes(official_state_dict):
    with torch.device("meta"):
        model = build_model("sam2.1_hiera_s", image_size=512)
    load_weights(model, official_state_dict("sam2.1_hiera_s"), source="sam2.1_hiera_small.pt")
