"""`sam2-plugins finetune`: fine-tune SAM 2 on a VOS dataset folder and report held-out J&F before and after."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from ..cli_arguments import at_least_one

CPU_TRIAL_IMAGE_SIZE = 256
CPU_SLOW_IMAGE_SIZE = 512  # above it, a CPU step takes a minute or more: the run warns

FINETUNE_DESCRIPTION = """\
Fine-tune SAM 2's video predictor on your own masklets, as Meta's training does: clips of K annotated frames with
up to M objects, prompts simulated on them (the mask, a box or a click on the first frames, corrective clicks),
Meta's loss (focal + dice + IoU + object score) and optimizer recipe (AdamW, a lower image-encoder rate, layer
decay, cosine schedule). Reads every VOS layout the project knows (SA-V train mp4 + JSON, SA-V val/test, DAVIS,
MOSE, LVOS, YouTube-VOS). Writes OUT.pt as {"model": state_dict} (loads in Meta's sam2 and here) with OUT.json
beside it; OUT.resume.pt holds the training state while it runs, so a killed run continues with --resume.
Under torchrun (one process per GPU) it trains with DistributedDataParallel.
"""


def add_finetune_command(subparsers: argparse._SubParsersAction) -> None:
    from ..model.official import DEFAULT_CHECKPOINT, DEVICE_CHOICES

    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune SAM 2 on a VOS dataset (Meta's training recipe)",
        description=FINETUNE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--train_root", required=True, type=Path, help="training videos (any known VOS layout)")
    parser.add_argument("--train_split", help="the training videos' split of --train_root (default: the layout's)")
    parser.add_argument("--val_root", type=Path, help="held-out videos: J&F is measured before and after training")
    parser.add_argument("--val_split", help="the held-out videos' split of --val_root (default: the layout's)")
    parser.add_argument(
        "--checkpoint",
        default=DEFAULT_CHECKPOINT,
        help=f"weights to start from: .pt file or official name ({DEFAULT_CHECKPOINT})",
    )
    parser.add_argument("--config", help="model config (default: implied by the checkpoint)")
    parser.add_argument("--out", required=True, type=Path, help="the fine-tuned checkpoint to write (.pt)")
    parser.add_argument("--steps", required=True, type=at_least_one, help="optimizer steps")
    parser.add_argument(
        "--image_size", type=at_least_one, default=1024, help="model input side, a multiple of 32 (1024)"
    )
    parser.add_argument("--frames_per_clip", type=at_least_one, default=8, help="annotated frames per clip (8)")
    parser.add_argument("--objects_per_clip", type=at_least_one, default=3, help="objects per clip at most (3)")
    parser.add_argument("--batch_size", type=at_least_one, default=1, help="clips per step (and per process)")
    parser.add_argument("--lr", type=float, default=5e-6, help="learning rate (5e-6)")
    parser.add_argument("--vision_lr", type=float, default=3e-6, help="image encoder learning rate (3e-6)")
    parser.add_argument(
        "--point_probability",
        type=float,
        default=0.5,
        help="share of clips prompted by clicks or a box instead of the mask (Meta's 0.5; 0: masks only, as the "
        "semi-supervised VOS benchmarks prompt)",
    )
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="where to train (auto)")
    parser.add_argument(
        "--freeze",
        nargs="+",
        default=["image_encoder"],
        metavar="MODULE",
        help="modules kept fixed, among image_encoder, memory_attention, memory_encoder, sam_prompt_encoder, "
        "sam_mask_decoder (image_encoder by default, the small-data choice; 'none' trains everything)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT.resume.pt (a killed run)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT.pt and OUT.json")
    parser.add_argument("--no_augment", action="store_true", help="no flips, warps or colour jitter")
    parser.add_argument("--seed", type=int, default=0, help="clip sampling and initialization seed (0)")
    parser.add_argument("--checkpoint_every", type=at_least_one, default=50, help="steps between training states (50)")
    parser.add_argument(
        "--activation_checkpointing", action="store_true", help="recompute the image encoder in backward (GPU memory)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(run=run_finetune)


def run_finetune(args: argparse.Namespace) -> int:
    from ..model.checkpoint import CheckpointError
    from .checkpoints import checked_output_path, writer_lock

    try:
        out = checked_output_path(args.out)
        if os.environ.get("RANK", "0") != "0":  # under torchrun, process 0 holds the lock for all
            return _finetune(args, out)
        with writer_lock(out):
            return _finetune(args, out)
    except (OSError, ValueError, FloatingPointError, CheckpointError) as error:
        print(f"sam2-plugins finetune: error: {error}", file=sys.stderr)
        return 1


def _finetune(args: argparse.Namespace, out: Path) -> int:
    """The run, writing `out` (a checked output path)."""
    import torch.distributed as dist

    from ..atomic import check_writable
    from ..datasets import detect_layout
    from ..model.checkpoint import guess_config
    from ..model.predictor import load_model, pick_device
    from .checkpoints import resume_path, sidecar_path
    from .optimizer import OptimizerRecipe
    from .prompting import PromptRecipe
    from .trainer import Finetuner, FinetuneSettings, init_distributed

    for path in (out, sidecar_path(out)):
        check_writable(path)
    state = resume_path(out)
    _check_output_is_free(out, state, args)
    freeze = () if args.freeze == ["none"] else tuple(args.freeze)
    settings = FinetuneSettings(
        steps=args.steps,
        frames_per_clip=args.frames_per_clip,
        objects_per_clip=args.objects_per_clip,
        batch_size=args.batch_size,
        freeze=freeze,
        augment=not args.no_augment,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        activation_checkpointing=args.activation_checkpointing,
        optimizer=replace(OptimizerRecipe(), lr=args.lr, vision_lr=args.vision_lr),
        prompts=replace(PromptRecipe(), point_probability=args.point_probability),
    )
    train_layout = detect_layout(args.train_root)
    train_videos = train_layout.videos(args.train_root, args.train_split, on_skip=_warn_skipped)
    val_videos = []
    if args.val_root:
        val_videos = detect_layout(args.val_root).videos(args.val_root, args.val_split, on_skip=_warn_skipped)
    device = init_distributed() or pick_device(args.device)
    leader = not dist.is_initialized() or dist.get_rank() == 0
    say = (lambda text: None) if args.quiet or not leader else (lambda text: print(text, flush=True))
    model = load_model(args.checkpoint, args.config, image_size=args.image_size, apply_postprocessing=False)
    source = Path(args.checkpoint)
    sidecar = {
        "config": args.config or guess_config(model.state_dict()),
        "source_checkpoint": str(source.resolve()) if source.is_file() else args.checkpoint,
        "image_size": args.image_size,
        "train_root": str(args.train_root.resolve()),
        "train_layout": train_layout.name,
        "train_split": args.train_split,
        "val_root": None if args.val_root is None else str(args.val_root.resolve()),
        "val_split": args.val_split,
        "val_videos": [video.video_id for video in val_videos],
    }
    finetuner = Finetuner(model, train_videos, settings, out, sidecar, device)  # checks the data before J&F
    sidecar["train_videos"] = [video.video_id for video in finetuner.clips.videos]
    if leader:
        for video in train_videos:
            if video not in finetuner.clips.videos:
                count = len(video.annotated_frames())
                _warn_skipped(video.video_id, f"{video.video_id}: {count} annotated frames, under frames_per_clip")
        shared = sorted(set(sidecar["train_videos"]) & set(sidecar["val_videos"]))
        if shared and sidecar["train_root"] == sidecar["val_root"] and args.train_split == args.val_split:
            print(
                f"warning: {len(shared)} held-out videos are training videos too ({', '.join(shared[:5])}): the "
                "held-out J&F does not measure generalization; pass another --val_root or --val_split",
                file=sys.stderr,
            )
        if device.type == "cpu" and args.image_size > CPU_SLOW_IMAGE_SIZE:
            print(
                f"warning: training at {args.image_size} px on the CPU takes a minute or more per step; for a trial "
                f"run pass --image_size {CPU_TRIAL_IMAGE_SIZE} (the masks are coarser), or train on a GPU",
                file=sys.stderr,
            )
    say(f"training on {len(finetuner.clips.videos)} {train_layout.name} videos from {args.train_root}, {device}")

    before = _jf(model, val_videos, device, say, "before")  # on the source weights, also when resuming
    if args.resume:
        if finetuner.resume():
            say(f"resumed from {state} at step {finetuner.step}/{settings.steps}")
        else:
            say(f"no training state at {state}: starting at step 0")
    with _stop_on_interrupt(finetuner, enabled=not dist.is_initialized()):
        finetuner.run(progress=None if args.quiet or not leader else _print_step)
    if finetuner.step < settings.steps:
        print(
            f"interrupted after step {finetuner.step}/{settings.steps}: the training state is in {state}; run the "
            "same command with --resume to continue",
            file=sys.stderr,
        )
        return 130
    after = _jf(model, val_videos, device, say, "after")
    metrics = {} if before is None else {"jf_before": before, "jf_after": after, "jf_gain": after - before}
    finetuner.finish(metrics)
    if leader:
        print(f"wrote {out} and {sidecar_path(out)}")
        if before is not None:
            objects = sum(len(video.object_ids) for video in val_videos)
            print(
                f"held-out J&F (0-100; {len(val_videos)} videos, {objects} objects, each prompted with its mask on "
                f"its first frame):  before {before:.2f}  after {after:.2f}  gain {after - before:+.2f}"
            )
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


def _check_output_is_free(out: Path, state: Path, args: argparse.Namespace) -> None:
    """Refuse to overwrite the source checkpoint, an earlier result (without --overwrite) or to restart an
    unfinished run (without --resume)."""
    if Path(args.checkpoint).is_file() and Path(args.checkpoint).resolve() == out.resolve():
        raise ValueError(f"{out}: is the checkpoint training starts from; pass another --out")
    if state.is_file():
        if not args.resume:
            raise FileExistsError(
                f"{state} holds an unfinished run: pass --resume to continue it, or delete it to start over"
            )
        return
    from .checkpoints import sidecar_path

    existing = [path for path in (out, sidecar_path(out)) if path.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(
            f"{existing[0]} exists (a finished run, or another file): pass --overwrite to replace it, or another --out"
        )


@contextmanager
def _stop_on_interrupt(finetuner, enabled: bool) -> Iterator[None]:
    """Ctrl-C or SIGTERM ends the run after the current step with its training state saved; a second Ctrl-C stops
    at once. Not under torchrun, whose processes would stop at different steps."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum, frame) -> None:
        print("\nstopping after this step (Ctrl-C again to stop at once) ...", file=sys.stderr, flush=True)
        finetuner.stop_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {number: signal.signal(number, request_stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _jf(model, videos, device, say, when: str) -> float | None:
    """Held-out J&F, the videos shared among the processes under torchrun (None without held-out videos)."""
    from .evaluation import held_out_jf

    if not videos:
        return None
    say(f"held-out J&F {when} training on {len(videos)} videos ...")
    return held_out_jf(model, videos, device=device)


def _print_step(report) -> None:
    from .trainer import RECENT_STEPS

    losses = report.losses
    terms = " ".join(f"{name.removeprefix('loss_')} {losses[name]:.4f}" for name in losses if name != "loss")
    minutes, seconds = divmod(round(report.seconds_left), 60) if report.seconds_left < 1e9 else (0, 0)
    speed = f"{report.steps_per_second:.2f} steps/s, {minutes}:{seconds:02d} left"
    recent = f"mean of last {min(report.step, RECENT_STEPS)} {report.recent_loss:.4f}"
    print(f"step {report.step}/{report.steps}  loss {losses['loss']:.4f} ({terms}; {recent})  {speed}", flush=True)


def _warn_skipped(video_id: str, reason: str) -> None:
    print(f"warning: {reason}", file=sys.stderr)
