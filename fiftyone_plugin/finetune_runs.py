"""The fine-tuning runs ``finetune_sam2`` registered on a dataset, as the J&F panel shows them: each run's config,
its loss curve (a Plotly line per step), its held-out scores before and after (J&F for videos, one-click IoU for
images) and the tuned checkpoint. Reads only what the run recorded: no torch, no model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import fiftyone as fo

from .forms import FINETUNE_METHOD
from .jf_charts import RUN_COLORS, count_text, score_text

FINETUNE_HINT = (
    "No fine-tuning run yet: run **SAM 2: fine-tune on these masks** (`finetune_sam2`) to train on this dataset."
)
HELD_OUT_SCORES = (("jf", "Held-out J&F"), ("iou", "Held-out IoU (one click per object)"))
"""The held-out score a run recorded (``<metric>_before`` / ``_after`` / ``_gain``) and how the panel names it."""
LISTED_NAMES = 10
"""Train and held-out videos or images named in the summary; the rest are counted."""


def finetune_run_keys(dataset: fo.Dataset | None) -> list[str]:
    """The dataset's fine-tuning runs, newest first."""
    if dataset is None:
        return []
    keys = dataset.list_runs(method=FINETUNE_METHOD)
    return sorted(keys, key=lambda key: dataset.get_run_info(key).timestamp, reverse=True)


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(f"`{name}`" for name in names[:LISTED_NAMES])
    return shown + (f" and {len(names) - LISTED_NAMES} more" if len(names) > LISTED_NAMES else "")


def held_out_lines(results) -> list[str]:
    """The held-out score before and after, and the gain, as the run recorded it; a line saying there was none."""
    for metric, label in HELD_OUT_SCORES:
        before = getattr(results, f"{metric}_before", None)
        if before is not None:
            after = getattr(results, f"{metric}_after")
            gain = f"{after - before + 0.0:+.1f}"
            return [f"**{label}** {score_text(before)} before → **{score_text(after)}** after (gain {gain})"]
    return ["**Held-out score**: none (nothing was held out: held_out_fraction was 0)"]


def run_summary(dataset: fo.Dataset, key: str) -> str:
    """A fine-tuning run in markdown: the tuned checkpoint, its held-out scores and its config."""
    config = dataset.get_run_info(key).config
    results = dataset.load_run_results(key)
    noun = "image" if getattr(config, "media_type", "video") == "image" else "video"
    train, held_out = getattr(config, f"train_{noun}s"), getattr(config, f"held_out_{noun}s")
    frozen = "image encoder" if config.freeze_image_encoder else "none"
    clips = f"{config.frames_per_clip} frames" if noun == "video" else "1 frame (each image a clip)"
    lines = [
        f"**Tuned checkpoint** `{config.checkpoint}`",
        *held_out_lines(results),
        f"- **Source checkpoint** `{config.source_checkpoint}` ({config.config or 'config from the checkpoint'})",
        f"- **Steps** {config.steps} · **image size** {config.image_size} px · **learning rate** {config.lr:g}",
        f"- **Frozen** {frozen} · **clips** {clips}, up to {count_text(config.objects_per_clip, 'object')}",
        f"- **Ground truth** `{config.gt_field}` · **seed** {config.seed}",
        f"- **Trained on** {count_text(len(train), noun)}: {_names(train)}",
        f"- **Held out** {count_text(len(held_out), noun)}: {_names(held_out) or 'none'}",
    ]
    return "\n\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:])


def loss_traces(history: Sequence[dict]) -> list[dict]:
    """Plotly lines of the loss per step: the total shown, each term of it one legend click away."""
    steps = [record["step"] for record in history]
    terms = [name for name in (history[0] if history else {}) if name not in ("step", "loss")]
    traces = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": steps,
            "y": [record["loss"] for record in history],
            "name": "loss",
            "line": {"color": RUN_COLORS[0]},
            "hovertemplate": "step %{x}: loss %{y:.4f}<extra></extra>",
        }
    ]
    for term in terms:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": steps,
                "y": [record[term] for record in history],
                "name": term,
                "visible": "legendonly",
                "hovertemplate": f"step %{{x}}: {term} %{{y:.4f}}<extra></extra>",
            }
        )
    return traces


def loss_layout(steps: int) -> dict:
    """Steps 1..``steps`` on whole-number ticks (about ten of them), the loss from zero."""
    return {
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "y": 1.15},
        "margin": {"t": 30, "l": 60, "b": 50, "r": 30},
        "xaxis": {"title": {"text": "step"}, "range": [0.5, steps + 0.5], "dtick": max(1, math.ceil(steps / 10))},
        "yaxis": {"title": {"text": "training loss"}, "rangemode": "tozero"},
    }
