"""Plotly charts of J&F scores on fixed bins, shared by the J&F panel and ``JFEvaluationResults.plot_*``, and the
one way scores and counts are written in the panel and the operators' results.

Bars are counted here (numpy, last bin closed) rather than by Plotly, so a bar clicked in the App maps back to
exactly the videos it counts (``bin_match``), the axis stays on 0-100 and a perfect 100 is in the last bar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BIN_WIDTH = 5.0
JF_BIN_EDGES = np.arange(0.0, 100.0 + BIN_WIDTH, BIN_WIDTH)
"""J&F bins [0, 5), [5, 10) ... [95, 100]."""
DIFFERENCE_BIN_EDGES = np.arange(-100.0 - BIN_WIDTH / 2, 100.0 + BIN_WIDTH, BIN_WIDTH)
"""Difference bins centred on multiples of 5 from -100 to 100: a run that changed nothing is the bar at 0."""
SCATTER_RANGE = [-5.0, 105.0]
"""0-100 with room for the markers of perfect and zero scores."""
RUN_COLORS = ("hsl(25,100%,51%)", "hsl(199,98%,48%)")
"""Run A orange, run B blue: the colours of FiftyOne's Model Evaluation panel."""


def score_text(value: float | None) -> str | None:
    """A score as the panel and the operators show every score: one decimal (``3.0``, never ``3`` or ``-0.0``)."""
    return None if value is None else f"{round(value, 1) + 0.0:.1f}"


def count_text(count: int, noun: str) -> str:
    """``1 video``, ``2 videos``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def table_title(shown: int, total: int, noun: str, order: str) -> str:
    """What a table of the first ``shown`` of ``total`` rows holds: ``2 videos, worst first`` when it holds them
    all, else ``10 of 37 videos, worst first``."""
    held = count_text(total, noun) if shown == total else f"{shown} of {count_text(total, noun)}"
    return f"{held}, {order} first"


def histogram_trace(values: Sequence[float], edges: np.ndarray, name: str, color: str) -> dict:
    """A Plotly bar trace of how many ``values`` fall in each bin of ``edges``."""
    counts, _ = np.histogram(np.asarray(values, dtype=float), bins=edges)
    return {
        "type": "bar",
        "x": ((edges[:-1] + edges[1:]) / 2).tolist(),
        "y": counts.tolist(),
        "width": float(edges[1] - edges[0]),
        "name": name,
        "marker": {"color": color},
        "opacity": 0.75,
        "hovertemplate": "%{y} videos<extra>" + name + "</extra>",
    }


def bin_match(expression, edges: np.ndarray, index: int):
    """A ``ViewExpression`` true where ``expression`` falls in bin ``index`` of ``edges`` (as counted above)."""
    low, high = float(edges[index]), float(edges[index + 1])
    upper = expression <= high if index == len(edges) - 2 else expression < high
    return (expression >= low) & upper


def highest_bar(traces: Sequence[dict]) -> int:
    return max((count for trace in traces for count in trace["y"]), default=0)


def histogram_layout(x_title: str, x_range: Sequence[float], highest: int, y_title: str = "videos") -> dict:
    """Overlaid bars on a fixed x range with both axis titles; whole-number counts up to ``highest``."""
    return {
        "barmode": "overlay",
        "bargap": 0,
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "y": 1.15},
        "margin": {"t": 30, "l": 60, "b": 50, "r": 30},
        "xaxis": {"title": {"text": x_title}, "range": list(x_range)},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero", "dtick": max(1, math.ceil(highest / 5))},
    }


def difference_range(differences: Sequence[float]) -> list[float]:
    """The x range of a difference histogram: symmetric, just wide enough for every bar."""
    largest = max((abs(d) for d in differences), default=0.0)
    half = min(100.0, BIN_WIDTH * np.ceil(largest / BIN_WIDTH)) + BIN_WIDTH
    return [-half, half]


def scatter_trace(x: Sequence[float], y: Sequence[float], ids: Sequence[str], names: Sequence[str]) -> dict:
    """A Plotly scatter of run A (x) against run B (y), one point per video; ``ids`` come back on a click."""
    return {
        "type": "scatter",
        "mode": "markers",
        "x": list(x),
        "y": list(y),
        "ids": list(ids),
        "text": list(names),
        "name": "videos",
        "marker": {"size": 9, "color": RUN_COLORS[1]},
        "cliponaxis": False,
        "hovertemplate": "%{text}<br>A %{x:.1f}, B %{y:.1f}<extra></extra>",
    }


def diagonal_trace() -> dict:
    """The line where both runs score the same."""
    return {
        "type": "scatter",
        "mode": "lines",
        "x": [0, 100],
        "y": [0, 100],
        "name": "A = B",
        "line": {"dash": "dot", "color": "gray"},
        "hoverinfo": "skip",
    }


def scatter_layout(name_a: str, name_b: str) -> dict:
    return {
        "showlegend": False,
        "margin": {"t": 40, "l": 60, "b": 50, "r": 20},
        "xaxis": {"title": {"text": f"J&F of {name_a} (A)"}, "range": SCATTER_RANGE},
        "yaxis": {"title": {"text": f"J&F of {name_b} (B)"}, "range": SCATTER_RANGE},
    }


def jf_distribution_figure(values_by_run: dict[str, Sequence[float]], **layout):
    """A ``plotly.graph_objects.Figure`` of the per-video J&F of one or two runs on 0-100."""
    import plotly.graph_objects as go

    traces = [
        histogram_trace(values, JF_BIN_EDGES, name, RUN_COLORS[i % 2])
        for i, (name, values) in enumerate(values_by_run.items())
    ]
    figure = go.Figure(data=traces, layout=histogram_layout("J&F per video", [0, 100], highest_bar(traces)))
    figure.update_layout(**layout)
    return figure
