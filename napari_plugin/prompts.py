"""Prompt layers (clicks and boxes) and their translation into per-frame, per-object SAM 2 prompts.

Clicks live in one Points layer with an ``obj_id`` and a ``positive`` feature (filled with their object's label
colour, a green border when positive, red when negative; the ``T`` key toggles the polarity of the next click, or of
the selected clicks in select mode); boxes live in one Shapes layer with an ``obj_id`` feature, outlined in their
object's colour. Both layers share the image layer's data coordinates, read as frames by a
:class:`~.frame_axes.FrameAxes` (prompts off its fixed indices, e.g. on another Z of a 4D stack, are ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from napari.layers import Image, Points, Shapes

from sam2_plugins.prompts import ObjectPrompt

from .frame_axes import FrameAxes

POSITIVE_COLOR = "lime"
NEGATIVE_COLOR = "red"
TOGGLE_POLARITY_KEY = "t"

PromptKey = tuple[int, int]
"""(frame index, object id)."""

ObjectColors = Callable[[np.ndarray], np.ndarray]
"""Object ids ``(n,)`` -> their RGBA label colours ``(n, 4)`` (a Labels layer's ``colormap.map``)."""


@dataclass(frozen=True)
class FramePrompts:
    """What the prompt layers hold of one object on one frame, in pixel x, y of that frame (the layers' record,
    keyed by `PromptKey`; the predictor gets it as the library's `ObjectPrompt`)."""

    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None

    def object_prompt(self, key: PromptKey) -> ObjectPrompt:
        """The library's prompt of object ``key[1]`` on frame ``key[0]``."""
        frame, obj_id = key
        return ObjectPrompt(frame, obj_id, points=self.points, labels=self.labels, box=self.box)


def image_grid(image: Image) -> dict:
    """Layer keyword arguments that place a layer on ``image``'s grid: its scale, translate, transforms, units."""
    return {
        "scale": image.scale,
        "translate": image.translate,
        "rotate": image.rotate,
        "shear": image.shear,
        "affine": image.affine,
        "units": image.units,
    }


def create_prompt_layers(image: Image, obj_id: int = 1) -> tuple[Points, Shapes]:
    """A clicks layer and a boxes layer registered on ``image``'s grid, new prompts going to ``obj_id``."""
    grid = image_grid(image)
    points = Points(
        ndim=image.ndim,
        name=f"{image.name} clicks",
        features={"obj_id": np.empty(0, dtype=int), "positive": np.empty(0, dtype=bool)},
        feature_defaults={"obj_id": obj_id, "positive": True},
        border_color="positive",
        border_color_cycle={True: POSITIVE_COLOR, False: NEGATIVE_COLOR},
        border_width=0.3,
        size=10,
        **grid,
    )
    points.bind_key(TOGGLE_POLARITY_KEY, toggle_polarity, overwrite=True)
    boxes = Shapes(
        ndim=image.ndim,
        name=f"{image.name} boxes",
        features={"obj_id": np.empty(0, dtype=int)},
        feature_defaults={"obj_id": obj_id},
        face_color="transparent",
        edge_width=2,
        **grid,
    )
    return points, boxes


def toggle_polarity(points: Points) -> None:
    """Flip the polarity of the next click, or in select mode that of the selected clicks."""
    selected = sorted(points.selected_data)
    if points.mode != "select" or not selected:
        points.feature_defaults["positive"] = not bool(points.feature_defaults["positive"].iloc[0])
        points.events.feature_defaults()
    else:
        features = points.features
        column = features.columns.get_loc("positive")
        features.iloc[selected, column] = ~features.iloc[selected, column].to_numpy(dtype=bool)
        points.events.features()
    points.refresh_colors(update_color_mapping=False)


def color_by_object(points: Points, boxes: Shapes, colors: ObjectColors) -> None:
    """Fill each click and outline each box with its object's label colour."""
    if len(points.data):
        points.face_color = np.asarray(colors(points.features["obj_id"].to_numpy()))
    if len(boxes.data):
        boxes.edge_color = np.asarray(colors(boxes.features["obj_id"].to_numpy()))


def set_prompt_object(points: Points, boxes: Shapes, obj_id: int) -> None:
    """Send the next clicks and boxes to object ``obj_id``."""
    for layer in (points, boxes):
        layer.feature_defaults["obj_id"] = obj_id
        layer.events.feature_defaults()


def collect_prompts(points: Points, boxes: Shapes, frame_axes: FrameAxes) -> dict[PromptKey, FramePrompts]:
    """Every object's prompts on every frame, read from the two layers.

    A click's frame and (y, x) come from ``frame_axes``; a box is the bounding rectangle of a shape's vertices (the
    last one drawn wins when an object has several on a frame).
    """
    clicks: dict[PromptKey, list[tuple[tuple[float, float], int]]] = {}
    obj_ids = points.features["obj_id"].to_numpy()
    positive = points.features["positive"].to_numpy()
    for coords, obj_id, is_positive in zip(np.asarray(points.data), obj_ids, positive):
        placed = frame_axes.frame_of(coords)
        if placed is None:
            continue
        frame, (y, x) = placed
        clicks.setdefault((frame, int(obj_id)), []).append(((float(x), float(y)), int(bool(is_positive))))
    box_of: dict[PromptKey, tuple[float, float, float, float]] = {}
    for vertices, obj_id in zip(boxes.data, boxes.features["obj_id"].to_numpy()):
        placed = frame_axes.frame_of(np.asarray(vertices))
        if placed is None:
            continue
        frame, plane = placed
        (y0, x0), (y1, x1) = plane.min(axis=0), plane.max(axis=0)
        box_of[(frame, int(obj_id))] = (float(x0), float(y0), float(x1), float(y1))
    prompts = {}
    for key in clicks.keys() | box_of.keys():
        frame_clicks = clicks.get(key, [])
        prompts[key] = FramePrompts(
            points=tuple(xy for xy, _ in frame_clicks),
            labels=tuple(label for _, label in frame_clicks),
            box=box_of.get(key),
        )
    return prompts
