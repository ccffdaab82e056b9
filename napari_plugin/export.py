"""Export of a Labels layer that re-opens aligned with its image: a TIFF hyperstack, or SA-V per-object PNG folders.

Both carry the layer's geometry (axis order, scale, translate, units): the TIFF in its ImageJ calibration
(resolution, spacing, frame interval) and properties, an SA-V video folder in a ``napari_layer.json`` beside its
object folders (evaluators read object folders only). :mod:`.io` reads both back as Labels of the image's shape.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tifffile

from sam2_plugins.frame_names import is_number_name, object_name
from sam2_plugins.masks import read_binary_mask_png
from sam2_plugins.sav_writer import write_sav_predictions

from .frame_axes import FrameAxes

IMAGEJ_AXES = "TZCYX"
IMAGEJ_UNITS = {"micrometer": "micron", "nanometer": "nm", "millimeter": "mm"}
GEOMETRY_PROPERTY = "sam2_plugins_labels"
"""ImageJ property (or shaped-TIFF metadata key) holding the :class:`LabelsGeometry` as JSON."""
SAV_GEOMETRY_FILE = "napari_layer.json"


@dataclass(frozen=True)
class LabelsGeometry:
    """Where a label array sits on its image: per axis a TIFF letter of TZCYX, napari's axis label, scale,
    translate and unit; the frame axes a session tracked, the array's shape, and the layer's rotate, shear and
    affine (None: napari's identity)."""

    axes: str
    axis_labels: tuple[str, ...]
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    units: tuple[str, ...]
    shape: tuple[int, ...]
    sequence: int | None
    fixed: tuple[tuple[int, int], ...]
    rotate: tuple[tuple[float, ...], ...] | None = None
    shear: tuple[float, ...] | None = None
    affine: tuple[tuple[float, ...], ...] | None = None

    @classmethod
    def of_layer(cls, data: np.ndarray, meta: Mapping) -> LabelsGeometry:
        """The geometry of a Labels layer from its data and its state (``layer.as_layer_data_tuple()[1]``, or
        what napari hands a writer); the frame axes come from its metadata (a video along axis 0 without them)."""
        ndim = data.ndim
        axis_labels = tuple(str(label) for label in meta.get("axis_labels") or (str(a - ndim) for a in range(ndim)))
        frame_axes = FrameAxes.from_metadata(meta.get("metadata") or {}, data.shape)
        return cls(
            axes=frame_axes.axis_letters(axis_labels),
            axis_labels=axis_labels,
            scale=tuple(float(v) for v in meta.get("scale", (1.0,) * ndim)),
            translate=tuple(float(v) for v in meta.get("translate", (0.0,) * ndim)),
            units=tuple(str(unit) for unit in meta.get("units") or ("pixel",) * ndim),
            shape=tuple(int(n) for n in data.shape),
            sequence=frame_axes.sequence,
            fixed=frame_axes.fixed,
            rotate=_matrix(meta.get("rotate")),
            shear=_vector(meta.get("shear")),
            affine=_matrix(meta.get("affine")),
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> LabelsGeometry:
        try:
            fields = json.loads(text)
            return cls(
                axes=str(fields["axes"]),
                axis_labels=tuple(map(str, fields["axis_labels"])),
                scale=tuple(map(float, fields["scale"])),
                translate=tuple(map(float, fields["translate"])),
                units=tuple(map(str, fields["units"])),
                shape=tuple(map(int, fields["shape"])),
                sequence=None if fields["sequence"] is None else int(fields["sequence"]),
                fixed=tuple((int(axis), int(index)) for axis, index in fields["fixed"]),
                rotate=_matrix(fields.get("rotate")),
                shear=_vector(fields.get("shear")),
                affine=_matrix(fields.get("affine")),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{where}: unreadable layer geometry ({error}); export the labels again") from error

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @property
    def frame_axes(self) -> FrameAxes:
        return FrameAxes(self.shape, self.sequence, self.fixed)

    def layer_kwargs(self) -> dict:
        """napari Labels keyword arguments placing the array on its image."""
        transforms = {"rotate": self.rotate, "shear": self.shear, "affine": self.affine}
        return {
            "scale": self.scale,
            "translate": self.translate,
            **{name: np.array(value) for name, value in transforms.items() if value is not None},
            "units": self.units,
            "axis_labels": self.axis_labels,
            "metadata": self.frame_axes.to_metadata(),
        }


def _matrix(value) -> tuple[tuple[float, ...], ...] | None:
    """A layer's rotate or affine matrix (an ``Affine`` or nested lists) as nested tuples of floats."""
    if value is None:
        return None
    matrix = np.asarray(getattr(value, "affine_matrix", value), dtype=float)
    return tuple(tuple(float(v) for v in row) for row in matrix)


def _vector(value) -> tuple[float, ...] | None:
    return None if value is None else tuple(float(v) for v in np.asarray(value, dtype=float).ravel())


def plain_geometry(shape: Sequence[int]) -> LabelsGeometry:
    """Geometry of an uncalibrated ``(T, H, W)`` (or ``(H, W)``, ``(T, Z, H, W)``...) stack on a pixel grid."""
    return LabelsGeometry.of_layer(np.empty(tuple(shape), dtype=np.uint8), {})


def save_labels_tiff(labels: np.ndarray, path: str | os.PathLike, geometry: LabelsGeometry | None = None) -> Path:
    """Write labels in their image's axis order (``geometry``; default an uncalibrated ``(T, H, W)`` stack) as a
    TIFF hyperstack: uint16 ImageJ with its calibration, or uint32 when ids exceed 65535.

    Pages are written one at a time in ImageJ's T, Z, C, Y, X order (memory stays flat); the geometry is stored in
    the file so :func:`read_labels_tiff` restores the axis order. The file is written beside ``path`` first and
    renamed at the end, so an existing file survives a failure.
    """
    path = Path(path)
    labels = np.asarray(labels)
    geometry = geometry or plain_geometry(labels.shape)
    _check_label_array(labels, path, geometry)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the folder {path.parent} does not exist; create it or pick another path")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; a TIFF export is one file: pick a file name ending in .tif")
    order = [geometry.axes.index(letter) for letter in IMAGEJ_AXES if letter in geometry.axes]
    stored_axes = "".join(geometry.axes[axis] for axis in order)
    stored = labels.transpose(order)
    scale = dict(zip(geometry.axes, geometry.scale))
    unit = dict(zip(geometry.axes, geometry.units))["X"]
    partial = path.with_name(f".{path.name}.partial")
    common = {"shape": stored.shape, "photometric": "minisblack", "resolution": (1 / scale["X"], 1 / scale["Y"])}
    try:
        if labels.max(initial=0) <= np.iinfo(np.uint16).max:
            metadata = {"axes": stored_axes, "Properties": {GEOMETRY_PROPERTY: geometry.to_json()}}
            if "Z" in scale:
                metadata["spacing"] = scale["Z"]
            if "T" in scale:
                metadata["finterval"] = scale["T"]
            if unit != "pixel":
                metadata["unit"] = IMAGEJ_UNITS.get(unit, unit)
            pages = _pages(stored, np.uint16)
            tifffile.imwrite(partial, pages, dtype=np.uint16, imagej=True, metadata=metadata, **common)
        else:
            metadata = {"axes": stored_axes, GEOMETRY_PROPERTY: json.loads(geometry.to_json())}
            tifffile.imwrite(partial, _pages(stored, np.uint32), dtype=np.uint32, metadata=metadata, **common)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def labels_tiff_geometry(path: str | os.PathLike) -> LabelsGeometry | None:
    """The geometry :func:`save_labels_tiff` stored in ``path``; None for another program's TIFF (pixels unread)."""
    with tifffile.TiffFile(path) as tiff:
        return _stored_geometry(tiff, Path(path))


def read_labels_tiff(path: str | os.PathLike) -> tuple[np.ndarray, LabelsGeometry] | None:
    """Labels written by :func:`save_labels_tiff`, in their image's axis order, with their geometry; None for a
    TIFF without our geometry (another program's)."""
    path = Path(path)
    with tifffile.TiffFile(path) as tiff:
        geometry = _stored_geometry(tiff, path)
        if geometry is None:
            return None
        series = tiff.series[0]
        data = series.asarray().reshape(series.get_shape(False))
        stored_axes = series.get_axes(False)
    kept = [stored_axes.index(letter) for letter in stored_axes if letter in geometry.axes]
    data = data[tuple(slice(None) if axis in kept else 0 for axis in range(data.ndim))]
    stored_axes = "".join(stored_axes[axis] for axis in kept)
    labels = data.transpose([stored_axes.index(letter) for letter in geometry.axes])
    if labels.shape != geometry.shape:
        raise ValueError(f"{path}: holds labels of shape {labels.shape}, its geometry says {geometry.shape}")
    return labels, geometry


def _stored_geometry(tiff: tifffile.TiffFile, path: Path) -> LabelsGeometry | None:
    if tiff.is_imagej:
        text = (tiff.imagej_metadata or {}).get("Properties", {}).get(GEOMETRY_PROPERTY)
    else:
        shaped = tiff.shaped_metadata[0] if tiff.shaped_metadata else {}
        text = json.dumps(shaped[GEOMETRY_PROPERTY]) if GEOMETRY_PROPERTY in shaped else None
    return None if text is None else LabelsGeometry.from_json(text, str(path))


def export_labels_sav(
    labels: np.ndarray, root: str | os.PathLike, video_name: str, geometry: LabelsGeometry | None = None
) -> Path:
    """Write the tracked frames of ``labels`` (``geometry.frame_axes``) as SA-V PNG folders ``root/video_name/``
    (:func:`save_labels_sav`) and the geometry beside them, so :func:`read_labels_sav` restores the layer."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise FileExistsError(
            f"{root}: is a file; SA-V export writes a folder of per-object PNG folders: pick a folder path"
        )
    labels = np.asarray(labels)
    geometry = geometry or plain_geometry(labels.shape)
    _check_label_array(labels, root, geometry)
    video = save_labels_sav(geometry.frame_axes.frame_view(labels), root, video_name)
    (video / SAV_GEOMETRY_FILE).write_text(geometry.to_json())
    return video


def read_labels_sav(folder: str | os.PathLike) -> tuple[np.ndarray, LabelsGeometry]:
    """An SA-V video folder of per-object PNG folders as one label array (labels from :func:`sav_object_folders`;
    where objects overlap the higher label wins). Frames named by number sit at that index (SA-V's 6 fps
    annotations land on their 24 fps frames); with our ``napari_layer.json`` the labels get the image's shape and
    geometry (all background when the export held no object)."""
    folder = Path(folder)
    objects = sav_object_folders(folder)
    sidecar = folder / SAV_GEOMETRY_FILE
    if not objects and sidecar.is_file():  # our export of labels without objects
        geometry = LabelsGeometry.from_json(sidecar.read_text(), str(sidecar))
        return np.zeros(geometry.shape, dtype=np.uint16), geometry
    if not objects:
        raise ValueError(f"{folder}: no object folders of PNG masks (<obj_id>/<frame>.png); pick an SA-V video folder")
    masks = {obj_id: {png.stem: png for png in obj.glob("*.png")} for obj_id, obj in objects.items()}
    names = sorted(set().union(*masks.values()))
    numbered = all(is_number_name(name) for name in names)
    index_of = {name: int(name) for name in names} if numbered else {name: i for i, name in enumerate(names)}
    first = read_binary_mask_png(next(iter(masks[min(masks)].values())))
    frames = np.zeros((max(index_of.values()) + 1, *first.shape), dtype=np.uint32 if max(masks) > 65535 else np.uint16)
    for obj_id in sorted(masks):
        for name, png in masks[obj_id].items():
            mask = read_binary_mask_png(png)
            if mask.shape != first.shape:
                raise ValueError(f"{png}: mask of shape {mask.shape}, other masks are {first.shape}")
            frames[index_of[name]][mask] = obj_id
    if not sidecar.is_file():
        return frames, plain_geometry(frames.shape)
    geometry = LabelsGeometry.from_json(sidecar.read_text(), str(sidecar))
    labels = np.zeros(geometry.shape, dtype=frames.dtype)
    view = geometry.frame_axes.frame_view(labels)
    if view.shape != frames.shape:
        raise ValueError(f"{folder}: masks of {frames.shape} do not fit the layer of {sidecar} ({view.shape})")
    view[...] = frames
    return labels, geometry


def sav_object_folders(folder: Path) -> dict[int, Path]:
    """``folder``'s SA-V object folders (subfolders named by a number holding PNG files) by label: the folder's
    number, plus one when there is an object ``000`` (SA-V's ground truth counts objects from 0, labels from 1)."""
    if not folder.is_dir():
        return {}
    objects = {
        int(entry.name): entry
        for entry in folder.iterdir()
        if entry.is_dir() and is_number_name(entry.name) and any(entry.glob("*.png"))
    }
    shift = 1 if 0 in objects else 0
    return {obj_id + shift: entry for obj_id, entry in objects.items()}


def default_export_path(source: str | os.PathLike | None, name: str, suffix: str) -> Path:
    """``<name><suffix>`` next to the image's source file or folder, else in the home folder (never the working
    folder of the process)."""
    if source:
        source = Path(source)
        return source.parent / f"{source.stem}{suffix}"
    return Path.home() / f"{name}{suffix}"


def _pages(stored: np.ndarray, dtype: type) -> Iterator[np.ndarray]:
    """The (Y, X) pages of a stack whose last two axes are Y, X, one at a time."""
    for index in np.ndindex(stored.shape[:-2]):
        yield np.ascontiguousarray(stored[index], dtype=dtype)


def _check_label_array(labels: np.ndarray, path: Path, geometry: LabelsGeometry) -> None:
    if labels.shape != geometry.shape or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: labels must be an integer array of shape {geometry.shape} ({geometry.axes}), "
            f"got {labels.dtype} {labels.shape}"
        )
    if labels.min(initial=0) < 0:
        raise ValueError(f"{path}: labels hold negative ids; object ids must be >= 0 (0 is background)")


def save_labels_sav(labels: np.ndarray, root: str | os.PathLike, video_name: str) -> Path:
    """Write ``(T, H, W)`` labels in the SA-V prediction layout: ``root/video_name/<obj:03d>/<frame>.png``.

    Every object present on some frame gets a 0/255 PNG for every frame (empty where it is absent), which is what
    ``sam2-plugins evaluate`` reads; once written, its frame PNGs replace those of a previous export, and other files
    in the video folder stay (:func:`sam2_plugins.sav_writer.write_sav_predictions`, which also refuses a
    ``video_name`` that is no single folder name). The stack is read once, a frame at a time.
    """
    root = Path(root)
    labels = _checked_labels(labels, root)
    with write_sav_predictions(root, video_name, len(labels), labels.shape[1:]) as writer:
        for frame_idx, frame_labels in enumerate(labels):
            for obj_id in np.unique(frame_labels):
                if obj_id != 0:
                    writer.add(frame_idx, object_name(int(obj_id)), frame_labels == obj_id)
    return root / video_name


def _checked_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: labels must be a (T, H, W) integer array, got {labels.dtype} {labels.shape}")
    if labels.min(initial=0) < 0:
        raise ValueError(f"{path}: labels hold negative ids; object ids must be >= 0 (0 is background)")
    return labels
