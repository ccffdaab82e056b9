"""Command-line entry point: ``sam2-plugins <command>``; each command is an ``add_*_command`` / ``run_*`` pair.

Front-ends add their own commands (the FiftyOne plugin's ``demo``) through the ``sam2_plugins.commands`` entry
point group: each entry is an ``add_*_command(subparsers)``, so the library never imports a front-end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .cli_arguments import at_least_one
from .evaluate_tracking import add_evaluate_tracking_command
from .predict_command import add_predict_command
from .training.command import add_finetune_command

if TYPE_CHECKING:
    from .evaluate import EvaluationResult

COMMANDS_ENTRY_POINT_GROUP = "sam2_plugins.commands"

EVALUATE_DESCRIPTION = """\
Score predicted masks against ground truth with J (region IoU) and F (boundary F-measure) under the benchmark's
own protocol, to full precision, and write results.csv to PRED_ROOT. Layouts: SA-V (GT_ROOT/<video>/<obj>/<frame>.png,
one object per PNG, read as > 0) or DAVIS (GT_ROOT/<video>/<frame>.png palette label maps); PRED_ROOT has the same
layout. Only the ground truth's annotated frames are scored; extra predicted frames are ignored.

Protocols (--protocol; by default the dataset layout's when GT_ROOT is, or is inside, a dataset folder (DAVIS,
MOSE, LVOS, SA-V), else from the folder shapes: object folders -> sav, label maps -> davis, maps holding only 0 and
255 -> davis-2016); the one used and where it came from are printed, and it is stored in --json:
  sav         the official SA-V evaluator's numbers (sav_evaluator.py; results.csv in its format): each object
              from its first appearance in ground truth or prediction, first and last annotated frames skipped;
  davis       the official DAVIS 2017 semi-supervised evaluator's (davis2017-evaluation): objects 1..N of the
              first annotated frame (255 is void), every frame but the first and last, empty/empty = 1;
              J and F Mean, Recall and Decay. Predicted labels above N are left out with a warning (the official
              tool stops on them);
  mose        the DAVIS 2017 rules (MOSE's);
  davis-2016  the DAVIS 2017 rules on the union of the objects (0/255 masks), one object per video;
  lvos        the official LVOS evaluator's: each object on the frames of its frame_range in the split's meta
              JSON (every 5th frame number), its first and last skipped; J and F Mean, Recall and V (the
              standard deviation of J&F).

Differences from the official tool:
  * a missing predicted video, object folder or frame is an error naming it (the official tool asserts on frames
    and, without --strict, silently drops missing videos, which inflates the score). --allow-missing scores
    missing masks as empty instead of dropping them;
  * a ground-truth/prediction shape mismatch names both files; RGB masks and non-binary SA-V masks are clear errors;
  * an object with no ground truth left after skipping the first and last frames is reported as unscored (the
    official tool crashes);
  * only PNG files are masks: other files in the ground truth (Thumbs.db, .DS_Store, a stray JPEG) and hidden
    entries (.ipynb_checkpoints, macOS's ._00000.png) are ignored with a warning naming them (the official tool
    counts them as frames, which shifts the skipped first and last frame, or reads them as object folders and
    crashes); a ground-truth folder without videos is an error;
  * results.csv and --json are written beside their place and renamed into it, so a failed write (a full disk,
    a read-only folder) names the file and leaves the previous one as it was; a --json path that cannot be
    written (a folder, a read-only place) is an error before the evaluation starts;
  * --json writes every score at full precision; it is exact and fast (work cropped to the objects, a fast PNG
    decoder, each PNG decoded once, -n processes).
"""


def add_evaluate_command(subparsers: argparse._SubParsersAction) -> None:
    from .evaluate import PROTOCOLS

    parser = subparsers.add_parser(
        "evaluate",
        help="J&F of predicted masks (exact SA-V evaluator numbers)",
        description=EVALUATE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--gt_root",
        required=True,
        type=Path,
        help="ground-truth folder, e.g. sav_val/Annotations_6fps or DAVIS/Annotations/480p, or a dataset folder "
        "(DAVIS, LVOS/valid, sav_val: its split's videos)",
    )
    parser.add_argument("--pred_root", required=True, type=Path, help="predicted masks, same layout as --gt_root")
    parser.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        help="scoring rules (default: picked from the ground truth's layout; see above)",
    )
    parser.add_argument("--split", help="with a dataset folder: the split to score (default: the layout's, e.g. val)")
    parser.add_argument(
        "-n", "--num_processes", type=at_least_one, default=1, help="videos scored in parallel (default 1)"
    )
    parser.add_argument(
        "-s",
        "--strict",
        action="store_true",
        help="also reject predicted videos that have no ground truth (missing predictions are always an error)",
    )
    parser.add_argument("--allow-missing", action="store_true", help="score missing predicted masks as empty")
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing but errors: no progress, table or warnings (results.csv and --json are still written)",
    )
    parser.add_argument(
        "--do_not_skip_first_and_last_frame",
        action="store_true",
        help="score the first and last annotated frames too (SA-V val/test and DAVIS semi-supervised skip them; "
        "LVOS scores them anyway)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write all scores at full precision to OUT")
    parser.add_argument("--per_frame", action="store_true", help="with --json: include every frame's J and F")
    parser.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from .atomic import check_writable, write_text
    from .evaluate import PROTOCOLS, evaluate_folders
    from .masks import MaskFormatError

    if args.per_frame and not args.json:
        print(
            "sam2-plugins evaluate: error: --per_frame needs --json OUT (the per-frame scores go there)",
            file=sys.stderr,
        )
        return 2
    skip = False if args.do_not_skip_first_and_last_frame else None
    progress = None if args.quiet else _progress_bar
    start = time.perf_counter()
    csv_path = args.pred_root / "results.csv"
    try:
        for output in (csv_path, args.json) if args.json else (csv_path,):
            check_writable(output)  # before the evaluation, not after it
        result = evaluate_folders(
            args.gt_root,
            args.pred_root,
            protocol=args.protocol,
            split=args.split,
            num_processes=args.num_processes,
            skip_first_and_last=skip,
            allow_missing=args.allow_missing,
            strict=args.strict,
            progress=progress,
        )
        table = result.results_csv()
        write_text(csv_path, table)
    except (OSError, MaskFormatError, ValueError) as error:
        print(f"sam2-plugins evaluate: error: {error}", file=sys.stderr)
        return 1
    if not args.quiet:
        _print_warnings(result)
    if args.json:
        try:
            write_text(args.json, json.dumps(result.to_json(per_frame=args.per_frame), indent=1) + "\n")
        except OSError as error:
            print(f"sam2-plugins evaluate: error: {error}", file=sys.stderr)
            return 1
    if not args.quiet:
        print(f"Protocol: {result.protocol}, {PROTOCOLS[result.protocol].title} (from {result.protocol_origin}).")
        print(
            f"{'Skipping' if result.skip_first_and_last else 'Not skipping'} the first and last annotated frame of "
            f"each {'video' if PROTOCOLS[result.protocol].objects == 'first-frame' else 'object'}."
        )
        print(table.replace(",", " "), end="")
        summary = " ".join(f"{name}: {value:.1f}" for name, value in result.statistics().items())
        print(f"\nSummary:\nGlobal score: {summary}")
        print(f"Time taken: {time.perf_counter() - start:.2f}s\nSaved the results to {csv_path}")
    return 0


def _print_warnings(result: EvaluationResult) -> None:
    """The evaluation's warnings on stderr: the ignored non-PNG entries and the objects left unscored."""
    if result.ignored_files:
        names = ", ".join(str(path) for path in result.ignored_files[:10])
        more = f" and {len(result.ignored_files) - 10} more" if len(result.ignored_files) > 10 else ""
        print(
            f"warning: ignored {len(result.ignored_files)} entries that are not PNG masks: {names}{more}",
            file=sys.stderr,
        )
    for score in result.unscored:
        print(f"warning: {score.key} not scored: {score.problem}", file=sys.stderr)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _progress_bar(items, total: int):
    from tqdm import tqdm

    return tqdm(items, total=total, unit="video", file=sys.stderr)


LIBRARY_COMMANDS = {
    "predict": add_predict_command,
    "evaluate": add_evaluate_command,
    "evaluate-tracking": add_evaluate_tracking_command,
    "finetune": add_finetune_command,
}


def build_parser(front_end_commands: bool = True) -> argparse.ArgumentParser:
    """The parser of the library's commands, and of the front-ends' unless ``front_end_commands`` is False."""
    parser = argparse.ArgumentParser(prog="sam2-plugins", description="SAM 2 video segmentation tools")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add_command in LIBRARY_COMMANDS.values():
        add_command(subparsers)
    if front_end_commands:
        from importlib.metadata import entry_points

        for entry_point in entry_points(group=COMMANDS_ENTRY_POINT_GROUP):
            try:
                add_command = entry_point.load()
            except ModuleNotFoundError as error:  # a front-end whose extra is not installed ([fiftyone], [napari])
                if (error.name or "").partition(".")[0] == __package__:
                    raise  # our own module missing is a broken install, not a missing extra
                _add_unavailable_command(subparsers, entry_point.name, error)
            else:
                add_command(subparsers)
    return parser


def _add_unavailable_command(subparsers: argparse._SubParsersAction, name: str, error: ModuleNotFoundError) -> None:
    """List a front-end command whose dependencies are missing; running it says what to install."""
    from importlib.metadata import PackageNotFoundError, metadata

    missing = error.name or str(error)
    try:
        extras = metadata("sam2-plugins").get_all("Provides-Extra") or []
    except PackageNotFoundError:
        extras = []
    fix = f'pip install "sam2-plugins[{missing}]"' if missing in extras else f"pip install {missing}"
    message = f"sam2-plugins {name}: needs {missing}, which is not installed ({error}): {fix}"
    parser = subparsers.add_parser(name, help=f"(unavailable: needs {missing}; {fix})", add_help=False)
    parser.add_argument("arguments", nargs=argparse.REMAINDER)

    def run_unavailable(args: argparse.Namespace) -> int:
        print(message, file=sys.stderr)
        return 1

    parser.set_defaults(run=run_unavailable)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # A library command parses without loading the front-ends' commands: importing FiftyOne takes seconds.
    args = build_parser(front_end_commands=not (argv and argv[0] in LIBRARY_COMMANDS)).parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
