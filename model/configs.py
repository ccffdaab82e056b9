"""The eight official SAM 2 / 2.1 architectures as plain Python, and the builder that assembles one.

Names follow Meta's config files (`sam2_hiera_t` ... `sam2.1_hiera_l`). All eight share the memory attention,
memory encoder, prompt encoder and mask decoder; they differ in the Hiera trunk, and SAM 2.1 adds a temporal
encoding of object pointers and a spatial "no object" memory embedding. `image_size` (default 1024, any
multiple of 32) trades accuracy for speed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import MLP
from .hiera import Hiera
from .image_encoder import FpnNeck, ImageEncoder
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention, MemoryAttentionLayer
from .memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from .position_encoding import PositionEmbeddingSine
from .prompt_encoder import PromptEncoder
from .sam2_model import Sam2Model
from .transformer import RoPEAttention, TwoWayTransformer

HIDDEN_DIM = 256  # width of the FPN neck, memory attention, prompt encoder and mask decoder
MEMORY_DIM = 64  # width of the spatial memories and object-pointer tokens
BACKBONE_STRIDE = 16
IMAGE_SIZE_MULTIPLE = 32  # Hiera's 4-pixel patches must tile its 8-token windows


@dataclass(frozen=True)
class TrunkSpec:
    """Hiera trunk hyper-parameters of one model size."""

    embed_dim: int
    num_heads: int
    stages: tuple[int, ...]
    global_att_blocks: tuple[int, ...]
    window_pos_embed_bkg_spatial_size: tuple[int, int]
    window_spec: tuple[int, ...] = (8, 4, 14, 7)

    @property
    def channel_list(self) -> list[int]:
        """Trunk output widths, lowest resolution first (each stage doubles the width)."""
        return [self.embed_dim * 2**stage for stage in reversed(range(len(self.stages)))]


@dataclass(frozen=True)
class Sam2Config:
    """One official architecture: its trunk and whether it is SAM 2.1."""

    name: str
    trunk: TrunkSpec
    is_sam2_1: bool


_TRUNKS = {
    "t": TrunkSpec(96, 1, (1, 2, 7, 2), (5, 7, 9), (7, 7)),
    "s": TrunkSpec(96, 1, (1, 2, 11, 2), (7, 10, 13), (7, 7)),
    "b+": TrunkSpec(112, 2, (2, 3, 16, 3), (12, 16, 20), (14, 14)),
    "l": TrunkSpec(144, 2, (2, 6, 36, 4), (23, 33, 43), (7, 7), window_spec=(8, 4, 16, 8)),
}

CONFIGS: dict[str, Sam2Config] = {
    f"{version}_hiera_{size}": Sam2Config(f"{version}_hiera_{size}", trunk, is_sam2_1=version == "sam2.1")
    for version in ("sam2", "sam2.1")
    for size, trunk in _TRUNKS.items()
}


def get_config(name: str | Sam2Config) -> Sam2Config:
    """The config called `name` (`sam2.1_hiera_t` ...; a `.yaml` suffix or folder prefix is ignored)."""
    if isinstance(name, Sam2Config):
        return name
    key = str(name).rsplit("/", 1)[-1].removesuffix(".yaml")
    if key not in CONFIGS:
        raise ValueError(f"unknown SAM 2 config {name!r}: use one of {', '.join(CONFIGS)}")
    return CONFIGS[key]


def _image_encoder(trunk: TrunkSpec) -> ImageEncoder:
    hiera = Hiera(
        embed_dim=trunk.embed_dim,
        num_heads=trunk.num_heads,
        stages=trunk.stages,
        global_att_blocks=trunk.global_att_blocks,
        window_pos_embed_bkg_spatial_size=trunk.window_pos_embed_bkg_spatial_size,
        window_spec=trunk.window_spec,
    )
    neck = FpnNeck(
        position_encoding=PositionEmbeddingSine(num_pos_feats=HIDDEN_DIM, normalize=True, temperature=10000),
        d_model=HIDDEN_DIM,
        backbone_channel_list=trunk.channel_list,
        fpn_top_down_levels=[2, 3],
        fpn_interp_model="nearest",
    )
    return ImageEncoder(trunk=hiera, neck=neck, scalp=1)


def _rope_attention(feat_size: int, kv_in_dim: int | None = None, rope_k_repeat: bool = False) -> RoPEAttention:
    return RoPEAttention(
        embedding_dim=HIDDEN_DIM,
        num_heads=1,
        downsample_rate=1,
        dropout=0.1,
        kv_in_dim=kv_in_dim,
        rope_theta=10000.0,
        rope_k_repeat=rope_k_repeat,
        feat_sizes=(feat_size, feat_size),
    )


def _memory_attention(feat_size: int) -> MemoryAttention:
    layer = MemoryAttentionLayer(
        activation="relu",
        cross_attention=_rope_attention(feat_size, kv_in_dim=MEMORY_DIM, rope_k_repeat=True),
        d_model=HIDDEN_DIM,
        dim_feedforward=2048,
        dropout=0.1,
        pos_enc_at_attn=False,
        pos_enc_at_cross_attn_keys=True,
        pos_enc_at_cross_attn_queries=False,
        self_attention=_rope_attention(feat_size),
    )
    return MemoryAttention(d_model=HIDDEN_DIM, pos_enc_at_input=True, layer=layer, num_layers=4)


def _memory_encoder() -> MemoryEncoder:
    return MemoryEncoder(
        out_dim=MEMORY_DIM,
        position_encoding=PositionEmbeddingSine(num_pos_feats=MEMORY_DIM, normalize=True, temperature=10000),
        mask_downsampler=MaskDownSampler(kernel_size=3, stride=2, padding=1),
        fuser=Fuser(
            layer=CXBlock(dim=HIDDEN_DIM, kernel_size=7, padding=3, layer_scale_init_value=1e-6, use_dwconv=True),
            num_layers=2,
        ),
    )


def _mask_decoder(dynamic_multimask_via_stability: bool) -> MaskDecoder:
    return MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=HIDDEN_DIM, mlp_dim=2048, num_heads=8),
        transformer_dim=HIDDEN_DIM,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
        use_high_res_features=True,
        iou_prediction_use_sigmoid=True,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
        use_multimask_token_for_obj_ptr=True,
        dynamic_multimask_via_stability=dynamic_multimask_via_stability,
        dynamic_multimask_stability_delta=0.05,
        dynamic_multimask_stability_thresh=0.98,
    )


def build_model(config: str | Sam2Config, image_size: int = 1024, apply_postprocessing: bool = True) -> Sam2Model:
    """An untrained `Sam2Model` of the named architecture at `image_size` (eval mode, float32, CPU).

    `apply_postprocessing` turns on Meta's inference-time extras: a single mask falls back to the best of the
    multimask outputs when unstable, and masks predicted from clicks are binarized before memory encoding.
    """
    config = get_config(config)
    if image_size <= 0 or image_size % IMAGE_SIZE_MULTIPLE:
        raise ValueError(
            f"image_size must be a positive multiple of {IMAGE_SIZE_MULTIPLE} (1024, 512, ...), got {image_size}"
        )
    feat_size = image_size // BACKBONE_STRIDE
    model = Sam2Model(
        image_encoder=_image_encoder(config.trunk),
        memory_attention=_memory_attention(feat_size),
        memory_encoder=_memory_encoder(),
        prompt_encoder=PromptEncoder(
            embed_dim=HIDDEN_DIM,
            image_embedding_size=(feat_size, feat_size),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=_mask_decoder(dynamic_multimask_via_stability=apply_postprocessing),
        object_pointer_projection=MLP(HIDDEN_DIM, HIDDEN_DIM, HIDDEN_DIM, 3),
        image_size=image_size,
        temporal_pointer_encoding=config.is_sam2_1,
        no_object_spatial_embedding=config.is_sam2_1,
        binarize_click_masks_for_memory=apply_postprocessing,
    )
    return model.eval()
