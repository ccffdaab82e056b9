"""``sam2-plugins predict``: semi-supervised VOS inference over a benchmark (:mod:`sam2_plugins.vos_predict`), with the
switches of Meta's ``tools/vos_inference.py``, resumable and split into cluster jobs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .model.official import DEFAULT_CHECKPOINT

PREDICT_DESCRIPTION = """\
Run SAM 2 over the videos of a VOS benchmark as Meta's tools/vos_inference.py does, and write its PNGs: each object
prompted with its ground-truth mask, tracked through the video, all objects of a video batched in one pass.

Inputs, either Meta's:  --base_video_dir JPEG folders (<video>/<frame>.jpg) and --input_mask_dir masks
  (<video>/<frame>.png palette PNGs, or <video>/<object>/<frame>.png with --per_obj_png_file; told from the folder
  when the flag is left out), the videos of --video_list_file or every folder;
or a dataset folder: --dataset ROOT of a layout told from its folders (SA-V val/test, DAVIS, MOSE, LVOS,
  YouTube-VOS; --layout names it), --split picks the split.
Outputs: --output_mask_dir/<video>/ with Meta's files: palette PNGs with the input palette (or the DAVIS one), per
object when the input is. A video's folder is moved into place once complete, and a video whose folder is there is
skipped, so running the command again resumes a run that was cut off. --shard i/N runs every N-th video from the
i-th (0-based), for cluster job arrays writing to one folder.

Unlike vos_inference.py: objects appearing later (--track_object_appearing_later_in_video) are tracked in one pass
through the video, not one pass per object; in the default mode an object first seen after the first annotated
frame is an error (Meta's script drops it from palette inputs); the frames before the first annotated frame get
empty PNGs; the model runs at --image_size (default 1024, as the configs Meta's script loads).
"""


def add_predict_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="SAM 2 over a VOS benchmark (Meta's vos_inference.py, batched)",
        description=PREDICT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inputs = parser.add_argument_group("inputs (Meta's folders, or --dataset)")
    inputs.add_argument("--base_video_dir", type=Path, help="folder of the videos' JPEG folders")
    inputs.add_argument("--input_mask_dir", type=Path, help="folder of the videos' input masks")
    inputs.add_argument("--video_list_file", type=Path, help="text file of video names, one a line (default: all)")
    inputs.add_argument("--dataset", type=Path, help="a VOS dataset folder (instead of the two folders above)")
    inputs.add_argument("--layout", help="the dataset's layout (default: told from its folders)")
    inputs.add_argument("--split", help="the dataset's split (default: the layout's)")
    parser.add_argument("--output_mask_dir", type=Path, required=True, help="where the predicted PNGs go")
    protocol = parser.add_argument_group("protocol (Meta's switches)")
    protocol.add_argument(
        "--per_obj_png_file", action="store_true", help="masks are per-object folders (SA-V); default: told"
    )
    protocol.add_argument(
        "--track_object_appearing_later_in_video",
        action="store_true",
        help="start each object on its first non-empty mask (LVOS, YouTube-VOS)",
    )
    protocol.add_argument("--use_all_masks", action="store_true", help="prompt every input mask, not the first only")
    protocol.add_argument("--score_thresh", type=float, default=0.0, help="mask logit threshold (default 0)")
    protocol.add_argument(
        "--apply_postprocessing",
        action="store_true",
        help="the predictor's interactive post-processing (hole filling, multimask fallback); off in benchmark runs",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--sam2_checkpoint", default=DEFAULT_CHECKPOINT, help=f"a .pt file or official name ({DEFAULT_CHECKPOINT})"
    )
    model.add_argument("--sam2_cfg", help="config, e.g. sam2.1_hiera_b+ or configs/sam2.1/sam2.1_hiera_b+.yaml")
    model.add_argument("--image_size", type=int, default=1024, help="model input side (default 1024, as trained)")
    model.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto (default)")
    model.add_argument("--precision", choices=("float32", "bfloat16"), help="default: bfloat16 on CUDA, else float32")
    parser.add_argument("--shard", type=_shard, metavar="i/N", help="run job i (0-based) of N: videos i, i+N, ...")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only, no progress")
    parser.set_defaults(run=run_predict)


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    try:
        shard = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give i/N, e.g. 0/4 for the first of 4 jobs") from None
    if shard[1] < 1 or not 0 <= shard[0] < shard[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: N must be at least 1 and i from 0 to N - 1")
    return shard


def run_predict(args: argparse.Namespace) -> int:
    from .datasets import detect_layout, get_layout
    from .masks import MaskFormatError
    from .model_loading import ModelSpec, config_name, load_video_predictor
    from .vos_predict import VosOptions, list_videos, predict_videos, shard_of

    def fail(message: str) -> int:
        print(f"sam2-plugins predict: error: {message}", file=sys.stderr)
        return 1

    meta_inputs = args.base_video_dir is not None or args.input_mask_dir is not None
    if meta_inputs == (args.dataset is not None):
        return fail("give either --base_video_dir and --input_mask_dir (Meta's inputs) or --dataset, not both")
    if meta_inputs and (args.base_video_dir is None or args.input_mask_dir is None):
        return fail("--base_video_dir and --input_mask_dir go together: give both")
    report = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    try:
        if meta_inputs:
            per_object = True if args.per_obj_png_file else None
            videos = list_videos(args.base_video_dir, args.input_mask_dir, args.video_list_file, per_object)
        else:
            layout = get_layout(args.layout) if args.layout else detect_layout(args.dataset)
            report(f"{args.dataset}: {layout.name} layout")
            videos = layout.videos(args.dataset, args.split)
        videos = shard_of(videos, args.shard)
        spec = ModelSpec(
            args.sam2_checkpoint,
            config=config_name(args.sam2_cfg) if args.sam2_cfg else None,
            image_size=args.image_size,
            device=args.device,
            precision=args.precision,
            apply_postprocessing=args.apply_postprocessing,
        )
        predictor = load_video_predictor(spec)
        options = VosOptions(args.score_thresh, args.use_all_masks, args.track_object_appearing_later_in_video)
        written = predict_videos(predictor, videos, args.output_mask_dir, options, report)
    except (OSError, ValueError, KeyError, MaskFormatError) as error:
        return fail(str(error))
    report(f"wrote {len(written)} of {len(videos)} videos to {args.output_mask_dir}")
    return 0
