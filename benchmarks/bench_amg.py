"""Our automatic mask generator against Meta's `SAM2AutomaticMaskGenerator`, on the same weights and photo.

One run each (after a small warm-up of both), wall and CPU time, the ratio, and where the time goes: image encoder,
prompt encoder + mask decoder, upsampling + stability scores, NMS, RLE (encoding and the output masks). Twice: with
Meta's default thresholds, and with every mask passing the IoU and stability filters (the load real weights give).
Meta's module imports torchvision, which cannot load with the CPU torch: it runs with the tests' torch-only
stand-in, whose Python-loop NMS is replaced by ours so that NMS time is not held against it.

    .venv/bin/python benchmarks/bench_amg.py                          # CPU, tiny, 1024 px, 32 x 32 points
    .venv/bin/python benchmarks/bench_amg.py --device cuda --config sam2.1_hiera_l
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import torchvision_standin

from sam2_plugins.model import Sam2AutomaticMaskGenerator, Sam2ImagePredictor
from sam2_plugins.model import automatic_mask_generator as our_module
from sam2_plugins.model.amg import nms

STAGES = ("encoder", "decoder", "upsample+stability", "nms", "rle")
PERMISSIVE = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


class StageClock:
    """Wall seconds spent inside wrapped callables, per stage (nested calls count for the outer stage only)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self._active = False

    def wrap(self, stage: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            if self._active:
                return function(*args, **kwargs)
            self._active = True
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                if self.device == "cuda":
                    torch.cuda.synchronize()
                self.seconds[stage] += time.perf_counter() - start
                self._active = False

        return timed


def _wrap(stack: ExitStack, clock: StageClock, stage: str, owner: object, name: str, function=None) -> None:
    """Time `owner.name` (or `function` in its place) as `stage` until `stack` closes."""
    stack.enter_context(mock.patch.object(owner, name, clock.wrap(stage, function or getattr(owner, name))))


def instrument_ours(stack: ExitStack, generator: Sam2AutomaticMaskGenerator, clock: StageClock) -> None:
    model = generator.predictor.model
    _wrap(stack, clock, "encoder", model, "encode_image")
    _wrap(stack, clock, "decoder", model.sam_prompt_encoder, "forward")
    _wrap(stack, clock, "decoder", model.sam_mask_decoder, "forward")
    for name, stage in (
        ("postprocess_masks", "upsample+stability"),
        ("stability_score", "upsample+stability"),
        ("nms", "nms"),
        ("masks_to_rle", "rle"),
        ("rle_to_mask", "rle"),
    ):
        _wrap(stack, clock, stage, our_module, name)


def instrument_meta(stack: ExitStack, generator, module, clock: StageClock) -> None:
    model = generator.predictor.model
    _wrap(stack, clock, "encoder", model, "forward_image")
    _wrap(stack, clock, "decoder", model.sam_prompt_encoder, "forward")
    _wrap(stack, clock, "decoder", model.sam_mask_decoder, "forward")
    _wrap(stack, clock, "upsample+stability", generator.predictor._transforms, "postprocess_masks")
    _wrap(stack, clock, "upsample+stability", module, "calculate_stability_score")
    _wrap(
        stack,
        clock,
        "nms",
        module,
        "batched_nms",
        lambda boxes, scores, _, iou_threshold: nms(boxes, scores, iou_threshold),
    )
    _wrap(stack, clock, "rle", module, "mask_to_rle_pytorch")
    _wrap(stack, clock, "rle", module, "rle_to_mask")


def timed_generate(generator, image: np.ndarray, device: str) -> tuple[list[dict], float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        records = generator.generate(image)
    if device == "cuda":
        torch.cuda.synchronize()
    return records, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="sam2.1_hiera_t")
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--points-per-batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--settings", choices=("default", "permissive", "both"), default="both")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    torchvision_standin.install()
    from sam2 import automatic_mask_generator as meta_module
    from sam2.build_sam import build_sam2

    folder = "sam2.1" if args.config.startswith("sam2.1") else "sam2"
    meta_model = build_sam2(f"configs/{folder}/{args.config}.yaml", None, device=args.device)
    with tempfile.TemporaryDirectory() as workdir:
        checkpoint = Path(workdir) / f"{args.config}.pt"
        torch.save({"model": meta_model.state_dict()}, checkpoint)
        predictor = Sam2ImagePredictor.from_checkpoint(checkpoint, config=args.config, device=args.device)
    image = data.astronaut()
    print(
        f"{args.config}, 1024 px model, astronaut 512 x 512, {args.points_per_side}^2 points, {args.device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )

    warm = {"points_per_side": 2}
    meta_module.SAM2AutomaticMaskGenerator(meta_model, **warm).generate(image)
    Sam2AutomaticMaskGenerator(predictor, **warm).generate(image)
    predictor.reset_predictor()  # ours must encode in the timed run too

    settings = {"default": {}, "permissive": PERMISSIVE}
    chosen = list(settings) if args.settings == "both" else [args.settings]
    for name in chosen:
        options = {"points_per_side": args.points_per_side, "points_per_batch": args.points_per_batch, **settings[name]}
        meta_clock, our_clock = StageClock(args.device), StageClock(args.device)
        meta = meta_module.SAM2AutomaticMaskGenerator(meta_model, **options)
        ours = Sam2AutomaticMaskGenerator(predictor, **options)
        with ExitStack() as stack:
            instrument_meta(stack, meta, meta_module, meta_clock)
            instrument_ours(stack, ours, our_clock)
            meta_records, meta_wall, meta_cpu = timed_generate(meta, image, args.device)
            predictor.reset_predictor()
            our_records, our_wall, our_cpu = timed_generate(ours, image, args.device)
        print(f"\n{name} thresholds: {len(meta_records)} masks (Meta) vs {len(our_records)} (ours)")
        print(f"  {'':20s} {'Meta s':>9s} {'ours s':>9s} {'speed-up':>9s}")
        print(f"  {'total wall':20s} {meta_wall:9.2f} {our_wall:9.2f} {meta_wall / our_wall:8.2f}x")
        print(f"  {'total CPU':20s} {meta_cpu:9.2f} {our_cpu:9.2f} {meta_cpu / our_cpu:8.2f}x")
        for stage in STAGES:
            meta_s, our_s = meta_clock.seconds[stage], our_clock.seconds[stage]
            ratio = f"{meta_s / our_s:8.2f}x" if our_s > 0 else "       -"
            print(f"  {stage:20s} {meta_s:9.2f} {our_s:9.2f} {ratio}")
        meta_rest = meta_wall - sum(meta_clock.seconds.values())
        our_rest = our_wall - sum(our_clock.seconds.values())
        print(f"  {'rest':20s} {meta_rest:9.2f} {our_rest:9.2f}")


if __name__ == "__main__":
    main()
