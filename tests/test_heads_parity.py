"""Prompt encoder, mask decoder, memory attention and memory encoder against Meta's sam2 1.1.0 modules.

Both sides are built from the reference's own YAML configs (our classes swapped in for its `_target_`s), share
seeded random weights through a strict state-dict load, and must agree to ~1e-5 on batches of several objects.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra.utils
import pytest
import sam2
import torch
from omegaconf import OmegaConf
from sam2.modeling.sam.mask_decoder import MaskDecoder as ReferenceMaskDecoder
from sam2.modeling.sam.prompt_encoder import PromptEncoder as ReferencePromptEncoder
from sam2.modeling.sam.transformer import TwoWayTransformer as ReferenceTwoWayTransformer

from sam2_plugins.model import transformer
from sam2_plugins.model.mask_decoder import MaskDecoder
from sam2_plugins.model.prompt_encoder import PromptEncoder
from sam2_plugins.model.transformer import RoPEAttention, TwoWayTransformer, attention_in_blocks

pytestmark = pytest.mark.parity

CHECKPOINTS = [
    "sam2_hiera_t", "sam2_hiera_s", "sam2_hiera_b+", "sam2_hiera_l",
    "sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l",
]  # fmt: skip
OUR_MODULES = {
    "sam2.modeling.memory_attention.": "sam2_plugins.model.memory_attention.",
    "sam2.modeling.memory_encoder.": "sam2_plugins.model.memory_encoder.",
    "sam2.modeling.sam.transformer.": "sam2_plugins.model.transformer.",
    "sam2.modeling.position_encoding.": "sam2_plugins.model.position_encoding.",
}
# The heads' options are the same in all 8 configs (the state-dict test checks every one): parity uses one.
TESTED_CONFIG = "sam2.1_hiera_t"
HEAD_PREFIXES = ("sam_prompt_encoder.", "sam_mask_decoder.", "memory_attention.", "memory_encoder.")
IMAGE_SIZE = 256
EMBEDDING_SIZE = IMAGE_SIZE // 16
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}


def reference_model_config(checkpoint: str) -> dict:
    """The `model` section of the reference's YAML config for a checkpoint, as plain containers."""
    family = "sam2.1" if checkpoint.startswith("sam2.1") else "sam2"
    path = Path(sam2.__file__).parent / "configs" / family / f"{checkpoint}.yaml"
    return OmegaConf.to_container(OmegaConf.load(path).model)


def with_our_targets(node):
    """A copy of a config tree whose `_target_`s name our classes instead of the reference's."""
    if isinstance(node, dict):
        return {key: with_our_targets(value) for key, value in node.items()}
    if isinstance(node, list):
        return [with_our_targets(value) for value in node]
    if isinstance(node, str):
        for theirs, ours in OUR_MODULES.items():
            if node.startswith(theirs):
                return ours + node[len(theirs) :]
    return node


def build_module(checkpoint: str, section: str, ours: bool) -> torch.nn.Module:
    """`memory_attention` or `memory_encoder` of a checkpoint's config, built from our classes or the reference's."""
    config = reference_model_config(checkpoint)[section]
    return hydra.utils.instantiate(with_our_targets(config) if ours else config).eval()


def build_sam_heads(checkpoint: str, ours: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Prompt encoder and mask decoder as `SAM2Base` builds them, with the video predictor's stability fallback."""
    prompt_encoder_class, mask_decoder_class, transformer_class = (
        (PromptEncoder, MaskDecoder, TwoWayTransformer)
        if ours
        else (ReferencePromptEncoder, ReferenceMaskDecoder, ReferenceTwoWayTransformer)
    )
    flags = reference_model_config(checkpoint)
    prompt_encoder = prompt_encoder_class(
        embed_dim=256,
        image_embedding_size=(EMBEDDING_SIZE, EMBEDDING_SIZE),
        input_image_size=(IMAGE_SIZE, IMAGE_SIZE),
        mask_in_chans=16,
    )
    mask_decoder = mask_decoder_class(
        num_multimask_outputs=3,
        transformer=transformer_class(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
        transformer_dim=256,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
        use_high_res_features=flags.get("use_high_res_features_in_sam", False),
        iou_prediction_use_sigmoid=flags.get("iou_prediction_use_sigmoid", False),
        pred_obj_scores=flags.get("pred_obj_scores", False),
        pred_obj_scores_mlp=flags.get("pred_obj_scores_mlp", False),
        use_multimask_token_for_obj_ptr=flags.get("use_multimask_token_for_obj_ptr", False),
        dynamic_multimask_via_stability=True,
        dynamic_multimask_stability_delta=0.05,
        dynamic_multimask_stability_thresh=0.98,
    )
    return prompt_encoder.eval(), mask_decoder.eval()


def randomized(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """`module` with noise added to every weight and buffer, so that no tensor keeps its default value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            tensor.add_(0.05 * torch.randn(tensor.shape, generator=generator))
    return module


def reference_twin(ours: torch.nn.Module, reference: torch.nn.Module) -> torch.nn.Module:
    """The reference module carrying our weights (strict load: same keys and shapes)."""
    reference.load_state_dict(ours.state_dict(), strict=True)
    return reference


def shapes_of(prefix: str, module: torch.nn.Module) -> dict[str, list[int]]:
    return {prefix + key: list(tensor.shape) for key, tensor in module.state_dict().items()}


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_state_dict_keys_and_shapes_match_official_checkpoint(shared_fixtures: Path, checkpoint: str) -> None:
    official = json.loads((shared_fixtures / "sam2_state_dict_shapes.json").read_text())[checkpoint]
    expected = {key: shape for key, shape in official.items() if key.startswith(HEAD_PREFIXES)}
    prompt_encoder, mask_decoder = build_sam_heads(checkpoint, ours=True)
    ours = {
        **shapes_of("sam_prompt_encoder.", prompt_encoder),
        **shapes_of("sam_mask_decoder.", mask_decoder),
        **shapes_of("memory_attention.", build_module(checkpoint, "memory_attention", ours=True)),
        **shapes_of("memory_encoder.", build_module(checkpoint, "memory_encoder", ours=True)),
    }
    assert sorted(set(expected) - set(ours)) == [], "keys missing from our modules"
    assert sorted(set(ours) - set(expected)) == [], "keys the official checkpoint does not have"
    assert ours == expected


def random_prompts(batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel points with every label (-1 padding, 0, 1, 2, 3), boxes and low-resolution mask logits."""
    points = torch.rand(batch, 5, 2, generator=generator) * IMAGE_SIZE
    labels = torch.tensor([[1, 0, -1, 2, 3], [0, 1, 1, -1, 1], [1, -1, -1, -1, -1]])[:batch]
    corners = torch.rand(batch, 2, 2, generator=generator) * IMAGE_SIZE
    boxes = torch.cat([corners.amin(1), corners.amax(1)], dim=-1)
    masks = torch.randn(batch, 1, 4 * EMBEDDING_SIZE, 4 * EMBEDDING_SIZE, generator=generator) * 5
    return (points, labels), boxes, masks


@pytest.mark.parametrize("prompt_kinds", [("points",), ("boxes",), ("points", "boxes", "masks"), ("masks",), ()])
def test_prompt_encoder_matches_reference(prompt_kinds: tuple[str, ...]) -> None:
    ours, _ = build_sam_heads(TESTED_CONFIG, ours=True)
    randomized(ours, seed=0)
    reference = reference_twin(ours, build_sam_heads(TESTED_CONFIG, ours=False)[0])
    points, boxes, masks = random_prompts(3, torch.Generator().manual_seed(1))
    prompts = {
        "points": points if "points" in prompt_kinds else None,
        "boxes": boxes if "boxes" in prompt_kinds else None,
        "masks": masks if "masks" in prompt_kinds else None,
    }
    with torch.no_grad():
        sparse, dense = ours(**prompts)
        expected_sparse, expected_dense = reference(**prompts)
        torch.testing.assert_close(ours.get_dense_pe(), reference.get_dense_pe(), **TOLERANCE)
    torch.testing.assert_close(sparse, expected_sparse, **TOLERANCE)
    torch.testing.assert_close(dense, expected_dense, **TOLERANCE)


@pytest.mark.parametrize("multimask_output", [True, False])
@pytest.mark.parametrize("repeat_image", [True, False])
def test_mask_decoder_matches_reference(multimask_output: bool, repeat_image: bool) -> None:
    prompt_encoder, ours = build_sam_heads(TESTED_CONFIG, ours=True)
    randomized(prompt_encoder, seed=2)
    randomized(ours, seed=3)
    reference = reference_twin(ours, build_sam_heads(TESTED_CONFIG, ours=False)[1])
    generator = torch.Generator().manual_seed(4)
    batch = 3
    image_batch = 1 if repeat_image else batch
    image = torch.randn(image_batch, 256, EMBEDDING_SIZE, EMBEDDING_SIZE, generator=generator)
    high_res = [
        torch.randn(image_batch, 32, 4 * EMBEDDING_SIZE, 4 * EMBEDDING_SIZE, generator=generator),
        torch.randn(image_batch, 64, 2 * EMBEDDING_SIZE, 2 * EMBEDDING_SIZE, generator=generator),
    ]
    points, boxes, masks = random_prompts(batch, generator)
    with torch.no_grad():
        sparse, dense = prompt_encoder(points, boxes, masks)
        inputs = dict(
            image_embeddings=image,
            image_pe=prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=repeat_image,
            high_res_features=high_res,
        )
        outputs = ours(**inputs)
        expected = reference(**inputs)
    assert outputs[0].shape == (batch, 3 if multimask_output else 1, 4 * EMBEDDING_SIZE, 4 * EMBEDDING_SIZE)
    for name, got, want in zip(["masks", "iou", "pointer tokens", "object scores"], outputs, expected):
        torch.testing.assert_close(got, want, **TOLERANCE, msg=lambda text, name=name: f"{name}: {text}")


def test_mask_decoder_without_high_res_features_or_score_head_matches_reference() -> None:
    """The original SAM variant: plain upscaling, unbounded IoU scores, constant object score."""
    options = dict(num_multimask_outputs=3, transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256)
    ours = randomized(
        MaskDecoder(transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=512, num_heads=8), **options),
        seed=5,
    ).eval()
    reference = reference_twin(
        ours,
        ReferenceMaskDecoder(
            transformer=ReferenceTwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=512, num_heads=8), **options
        ).eval(),
    )
    generator = torch.Generator().manual_seed(6)
    inputs = dict(
        image_embeddings=torch.randn(1, 256, 8, 8, generator=generator),
        image_pe=torch.randn(1, 256, 8, 8, generator=generator),
        sparse_prompt_embeddings=torch.randn(2, 3, 256, generator=generator),
        dense_prompt_embeddings=torch.randn(2, 256, 8, 8, generator=generator),
        multimask_output=False,
        repeat_image=True,
    )
    with torch.no_grad():
        for got, want in zip(ours(**inputs), reference(**inputs)):
            torch.testing.assert_close(got, want, **TOLERANCE)


def test_stability_fallback_picks_the_same_masks_as_reference() -> None:
    """Stable single masks are kept, unstable ones replaced by the best-scored multimask output."""
    _, ours = build_sam_heads(TESTED_CONFIG, ours=True)
    _, reference = build_sam_heads(TESTED_CONFIG, ours=False)
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(4, 4, 8, 8, generator=generator)
    logits[0, 0] = torch.where(logits[0, 0] > 0, 20.0, -20.0)  # far from 0: stable
    logits[2, 0] = 0.01 * logits[2, 0]  # near 0: unstable
    logits[3, 0] = -20.0  # empty at both thresholds: stability 1
    iou = torch.rand(4, 4, generator=generator)
    masks, scores = ours._single_mask_or_best_multimask(logits, iou)
    expected_masks, expected_scores = reference._dynamic_multimask_via_stability(logits, iou)
    torch.testing.assert_close(masks, expected_masks, rtol=0, atol=0)
    torch.testing.assert_close(scores, expected_scores, rtol=0, atol=0)
    assert torch.equal(masks[0, 0], logits[0, 0]) and torch.equal(masks[3, 0], logits[3, 0])
    assert torch.equal(masks[2, 0], logits[2, 1 + iou[2, 1:].argmax()])


def memory_bank(batch: int, num_frames: int, num_pointer_tokens: int, generator: torch.Generator) -> dict:
    """Memory-attention inputs, sequence first: frame tokens and memories of `num_frames` frames plus pointers."""
    tokens = EMBEDDING_SIZE * EMBEDDING_SIZE
    num_memories = num_frames * tokens + num_pointer_tokens
    return dict(
        curr=torch.randn(tokens, batch, 256, generator=generator),
        curr_pos=torch.randn(tokens, batch, 256, generator=generator),
        memory=torch.randn(num_memories, batch, 64, generator=generator),
        memory_pos=torch.randn(num_memories, batch, 64, generator=generator),
        num_obj_ptr_tokens=num_pointer_tokens,
    )


@pytest.mark.parametrize(("num_frames", "num_pointer_tokens"), [(1, 0), (3, 8), (0, 16)])
def test_memory_attention_matches_reference(num_frames: int, num_pointer_tokens: int) -> None:
    ours = randomized(build_module(TESTED_CONFIG, "memory_attention", ours=True), seed=8)
    reference = reference_twin(ours, build_module(TESTED_CONFIG, "memory_attention", ours=False))
    inputs = memory_bank(batch=3, num_frames=num_frames, num_pointer_tokens=num_pointer_tokens,
                         generator=torch.Generator().manual_seed(9))  # fmt: skip
    with torch.no_grad():
        output = ours(**inputs)
        expected = reference(**inputs)
    assert output.shape == inputs["curr"].shape
    torch.testing.assert_close(output, expected, **TOLERANCE)


def test_memory_attention_batch_equals_objects_one_by_one() -> None:
    """Each object of a batch attends to its own memories only, as if run alone (what per-object code does)."""
    ours = randomized(build_module(TESTED_CONFIG, "memory_attention", ours=True), seed=10)
    inputs = memory_bank(batch=3, num_frames=2, num_pointer_tokens=4, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        batched = ours(**inputs)
        for index in range(3):
            alone = {
                key: value[:, index : index + 1] if torch.is_tensor(value) else value for key, value in inputs.items()
            }
            torch.testing.assert_close(batched[:, index : index + 1], ours(**alone), **TOLERANCE)


def test_memory_attention_runs_one_shared_frame_for_all_objects() -> None:
    """Frame tokens of batch 1 give each object what its own copy of them gives."""
    ours = randomized(build_module(TESTED_CONFIG, "memory_attention", ours=True), seed=17)
    inputs = memory_bank(batch=3, num_frames=2, num_pointer_tokens=4, generator=torch.Generator().manual_seed(18))
    shared = {**inputs, "curr": inputs["curr"][:, :1], "curr_pos": inputs["curr_pos"][:, :1]}
    copied = {**shared, "curr": shared["curr"].repeat(1, 3, 1), "curr_pos": shared["curr_pos"].repeat(1, 3, 1)}
    with torch.no_grad():
        torch.testing.assert_close(ours(**shared), ours(**copied), **TOLERANCE)


def test_attention_in_blocks_equals_scaled_dot_product_attention(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU path of memory attention: several batch elements and query blocks, the last one partial."""
    monkeypatch.setattr(transformer, "ATTENTION_WEIGHTS_PER_BLOCK", 300 * 128)
    generator = torch.Generator().manual_seed(16)
    q = torch.randn(3, 1, 2 * 128 + 50, 32, generator=generator)
    k = torch.randn(3, 1, 300, 32, generator=generator)
    v = torch.randn(3, 1, 300, 8, generator=generator)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(attention_in_blocks(q, k, v), expected, **TOLERANCE)


def test_rope_attention_rejects_keys_that_are_not_whole_frames() -> None:
    attention = RoPEAttention(256, 1, rope_k_repeat=True, feat_sizes=(EMBEDDING_SIZE, EMBEDDING_SIZE), kv_in_dim=64)
    queries = torch.randn(2, EMBEDDING_SIZE**2, 256)
    memories = torch.randn(2, 2 * EMBEDDING_SIZE**2 + 5, 64)
    with pytest.raises(ValueError, match="multiple of"):
        attention(queries, memories, memories, num_k_exclude_rope=4)
    assert attention(queries, memories, memories, num_k_exclude_rope=5).shape == queries.shape


def test_rope_attention_uses_feat_sizes_for_non_square_grids() -> None:
    """A 12x4 grid is encoded by its configured width and height; other non-square token counts are an error."""
    attention = RoPEAttention(64, 1, feat_sizes=(12, 4)).eval()
    tokens = torch.randn(1, 48, 64)
    assert attention(tokens, tokens, tokens).shape == tokens.shape
    with pytest.raises(ValueError, match="feat_sizes"):
        attention(tokens[:, :40], tokens[:, :40], tokens[:, :40])


@pytest.mark.parametrize("skip_mask_sigmoid", [False, True])
def test_memory_encoder_matches_reference(skip_mask_sigmoid: bool) -> None:
    ours = randomized(build_module(TESTED_CONFIG, "memory_encoder", ours=True), seed=12)
    reference = reference_twin(ours, build_module(TESTED_CONFIG, "memory_encoder", ours=False))
    generator = torch.Generator().manual_seed(13)
    pix_feat = torch.randn(3, 256, EMBEDDING_SIZE, EMBEDDING_SIZE, generator=generator)
    masks = torch.randn(3, 1, IMAGE_SIZE, IMAGE_SIZE, generator=generator) * 10
    if skip_mask_sigmoid:
        masks = (masks > 0).float()
    with torch.no_grad():
        output = ours(pix_feat, masks, skip_mask_sigmoid=skip_mask_sigmoid)
        expected = reference(pix_feat, masks, skip_mask_sigmoid=skip_mask_sigmoid)
    assert output["vision_features"].shape == (3, 64, EMBEDDING_SIZE, EMBEDDING_SIZE)
    torch.testing.assert_close(output["vision_features"], expected["vision_features"], **TOLERANCE)
    torch.testing.assert_close(output["vision_pos_enc"], expected["vision_pos_enc"], **TOLERANCE)


def test_memory_encoder_shares_one_frame_between_objects() -> None:
    """Frame features of batch 1 give each object the memory it gets from its own copy of the features."""
    encoder = randomized(build_module(TESTED_CONFIG, "memory_encoder", ours=True), seed=14)
    generator = torch.Generator().manual_seed(15)
    pix_feat = torch.randn(1, 256, EMBEDDING_SIZE, EMBEDDING_SIZE, generator=generator)
    masks = torch.randn(3, 1, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    with torch.no_grad():
        shared = encoder(pix_feat, masks)
        copied = encoder(pix_feat.repeat(3, 1, 1, 1), masks)
    torch.testing.assert_close(shared["vision_features"], copied["vision_features"], **TOLERANCE)
    torch.testing.assert_close(shared["vision_pos_enc"], copied["vision_pos_enc"], **TOLERANCE)
