"""``sam2-plugins demo`` (``make demo`` in a checkout): synthetic SA-V videos -> FiftyOne dataset -> SAM 2 -> J&F ->
SA-V export, end to end.

Everything runs on this machine: the sample is written under ``output_dir``, the dataset lives in FiftyOne's
database, the checkpoint comes from the Hugging Face cache (downloaded once) or a local file. Without a checkpoint
(offline, nothing cached) the demo says why it skips SAM 2 and how to get the file, and runs the rest of the
pipeline on the ground truth. The App command it prints finds the plugin from a pip install as from a checkout.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from sam2_plugins.model.official import DEFAULT_CHECKPOINT

DATASET_NAME = "sam2-plugins-demo"


@dataclass
class DemoOptions:
    output_dir: Path = Path("demo_output")
    checkpoint: str = DEFAULT_CHECKPOINT
    config: str | None = None
    image_size: int | None = None
    device: str | None = None
    num_videos: int = 2
    num_frames: int = 13
    dataset_name: str = DATASET_NAME


def _resolve_checkpoint(checkpoint: str) -> str | None:
    """The local checkpoint path, downloading an official name once; None (after saying why) when unavailable."""
    from sam2_plugins.model.checkpoint import CheckpointError, resolve_checkpoint

    try:
        return str(resolve_checkpoint(checkpoint))
    except (CheckpointError, OSError) as error:
        print(
            f"3/5 SAM 2 skipped: no checkpoint: {error}\n"
            "    Rerun with `sam2-plugins demo --checkpoint FILE.pt` once you have the file, or connect once so the\n"
            "    official weights are cached. Continuing with the ground truth standing in for predictions."
        )
        return None


def _app_plugins_dir(output_dir: Path) -> Path | None:
    """None when FiftyOne, as configured, finds the plugin; else a plugins folder under ``output_dir`` holding it,
    for the App command's FIFTYONE_PLUGINS_DIR."""
    from .plugin_folder import folders_fiftyone_loads, install_plugin

    if folders_fiftyone_loads():
        return None
    plugins_dir = output_dir / "fiftyone_plugins"
    install_plugin(plugins_dir)
    return plugins_dir


def _print_table(dataset, eval_key: str) -> None:
    rows = zip(
        dataset.values("video_id"),
        dataset.values("masklet_num"),
        *(dataset.values(f"{eval_key}_{m}") for m in ("JF", "J", "F")),
    )
    print(f"\n{'video':<12} {'objects':>7} {'J&F':>6} {'J':>6} {'F':>6}")
    for video_id, objects, jf, j, f in rows:
        print(f"{video_id:<12} {objects:>7} {jf:>6.1f} {j:>6.1f} {f:>6.1f}")


def run_demo(options: DemoOptions) -> int:
    """Run the whole pipeline and print the per-video J&F table and the command that opens the App."""
    import fiftyone as fo

    from sam2_plugins.evaluate import evaluate_folders
    from sam2_plugins.sample_data import write_sav_val

    from .apply_sam2 import apply_sam2
    from .export_sav_predictions import export_sav_predictions
    from .import_sav import import_sav
    from .jf_evaluation import evaluate_jf

    output_dir = options.output_dir.resolve()
    sav_root = output_dir / "sav_val"
    print(f"1/5 Writing {options.num_videos} synthetic SA-V val videos of {options.num_frames} frames to {sav_root}")
    shutil.rmtree(sav_root, ignore_errors=True)  # the demo's own sample, rewritten whole
    write_sav_val(sav_root, num_videos=options.num_videos, num_frames=options.num_frames)
    print(f"2/5 Importing them into the FiftyOne dataset '{options.dataset_name}'")
    if fo.dataset_exists(options.dataset_name):
        fo.delete_dataset(options.dataset_name)
    dataset, report = import_sav(sav_root, dataset_name=options.dataset_name)
    for video_id, problem in report.failed.items():
        print(f"    skipped {video_id}: {problem}")
    checkpoint = _resolve_checkpoint(options.checkpoint)
    pred_field = "ground_truth"
    if checkpoint is not None:
        from sam2_plugins.model import default_image_size

        pred_field = "sam2"
        image_size = options.image_size or default_image_size(options.device)
        print(f"3/5 SAM 2 ({checkpoint}, image size {image_size}) prompted with each object's first mask")
        apply_sam2(
            dataset,
            checkpoint=checkpoint,
            config=options.config,
            image_size=image_size,
            device=options.device,
            prompt="gt_masks",
            pred_field=pred_field,
            progress=lambda fraction, label: print(f"\r    {fraction:6.1%} {label:<40}", end="", flush=True),
        )
        print()
    print(f"4/5 J&F of '{pred_field}' (evaluation key 'demo_jf')")
    results = evaluate_jf(dataset, "ground_truth", pred_field, "demo_jf")
    _print_table(dataset, "demo_jf")
    print("    " + "  ".join(f"{k} {v:.1f}" for k, v in results.metrics().items()))
    pred_root = output_dir / "predictions"
    print(f"5/5 Exporting to {pred_root} and scoring the PNGs with the SA-V evaluator")
    export_sav_predictions(dataset, pred_field, pred_root, overwrite=True)
    folder_scores = evaluate_folders(sav_root / "Annotations_6fps", pred_root).to_json()
    json_path = output_dir / "jf.json"
    json_path.write_text(json.dumps(folder_scores, indent=1) + "\n")
    same = all(abs(folder_scores["global"][k] - v) < 1e-9 for k, v in results.metrics().items())
    print(
        f"    J&F of the exported PNGs: {folder_scores['global']['J&F']:.1f} "
        f"({'equal to the stored evaluation' if same else 'DIFFERS from the stored evaluation'}; {json_path})"
    )
    plugins_dir = _app_plugins_dir(output_dir)
    prefix = f"FIFTYONE_PLUGINS_DIR={shlex.quote(str(plugins_dir))} " if plugins_dir else ""
    app_command = shlex.join([str(Path(sys.executable).parent / "fiftyone"), "app", "launch", options.dataset_name])
    print(f"\nOpen it in the FiftyOne App:\n    {prefix}{app_command}")
    if plugins_dir:
        print(
            "    (after `sam2-plugins fiftyone-plugin install` FiftyOne finds the plugin without FIFTYONE_PLUGINS_DIR)"
        )
    print()
    return 0


def add_demo_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="synthetic SA-V -> FiftyOne -> SAM 2 -> J&F -> SA-V export, end to end",
        description="Write a few synthetic SA-V videos, import them into FiftyOne, run SAM 2 prompted with each "
        "object's first mask, score J&F, export SA-V PNGs, check them with `evaluate`, and print the App command.",
    )
    parser.add_argument(
        "--checkpoint",
        default=DEFAULT_CHECKPOINT,
        help=f"official name (downloaded once to the cache) or local .pt (default {DEFAULT_CHECKPOINT})",
    )
    parser.add_argument("--config", help="model config, e.g. sam2.1_hiera_t (default: from the checkpoint)")
    parser.add_argument(
        "--image-size",
        type=int,
        help="model input size (default 1024 with a GPU, 512 on CPU to keep the demo to minutes)",
    )
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--num-videos", type=int, default=2, help="synthetic videos (default 2)")
    parser.add_argument("--num-frames", type=int, default=13, help="frames per video (default 13)")
    parser.add_argument("--output-dir", type=Path, default=Path("demo_output"), help="default ./demo_output")
    parser.add_argument("--dataset-name", default=DATASET_NAME, help=f"FiftyOne dataset (default {DATASET_NAME})")
    parser.set_defaults(run=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    return run_demo(
        DemoOptions(
            output_dir=args.output_dir,
            checkpoint=args.checkpoint,
            config=args.config,
            image_size=args.image_size,
            device=args.device,
            num_videos=args.num_videos,
            num_frames=args.num_frames,
            dataset_name=args.dataset_name,
        )
    )
