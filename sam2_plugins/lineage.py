"""The lineage of a tracking result: which track lives on which frames and which track it came from.

A track is the Cell Tracking Challenge's ``L B E P`` record: label ``L`` is present on every frame from ``B`` to ``E``
(zero-based, inclusive) and descends from track ``P`` (0: no parent), which ended before ``B``. A division gives a
mother two daughters; a cell lost for a few frames and found again is a track with one daughter. ``res_track.txt``
and ``man_track.txt`` hold one record per line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

MAX_TRACK_ID = 65535
"""CTC label images are 16-bit: track ids are 1..65535."""


class LineageError(ValueError):
    """A lineage that breaks the CTC rules; the message names the track and the fix."""


@dataclass(frozen=True)
class Track:
    """Track ``track_id`` is present from frame ``first`` to frame ``last`` and descends from ``parent`` (0: none)."""

    track_id: int
    first: int
    last: int
    parent: int = 0

    def __post_init__(self) -> None:
        for name in ("track_id", "first", "last", "parent"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise LineageError(f"track {self.track_id!r}: {name} {value!r} is not a whole number")
        if not 1 <= self.track_id <= MAX_TRACK_ID:
            raise LineageError(
                f"track {self.track_id}: ids are 1..{MAX_TRACK_ID} (16-bit labels, 0 is the background); renumber it"
            )
        if self.first < 0:
            raise LineageError(f"track {self.track_id}: first frame {self.first} is negative; frames count from 0")
        if self.last < self.first:
            raise LineageError(f"track {self.track_id}: ends on frame {self.last}, before its first frame {self.first}")
        if not 0 <= self.parent <= MAX_TRACK_ID:
            raise LineageError(f"track {self.track_id}: parent {self.parent} is not 0 (none) or a track id")
        if self.parent == self.track_id:
            raise LineageError(f"track {self.track_id}: is its own parent; set its parent to 0 or another track")

    def ctc_line(self) -> str:
        """The ``L B E P`` line of this track."""
        return f"{self.track_id} {self.first} {self.last} {self.parent}"


class Lineage:
    """Tracks by id, kept valid under the CTC rules: a parent exists and ends before its children begin."""

    def __init__(self, tracks: Iterable[Track] = ()) -> None:
        self._tracks: dict[int, Track] = {}
        pending = list(tracks)
        for track in pending:
            if track.track_id in self._tracks:
                raise LineageError(f"track {track.track_id}: listed twice; give each track its own id")
            self._tracks[track.track_id] = track
        for track in pending:
            self._check_parent(track)

    # --- reading ---------------------------------------------------------------------------------------------
    def __getitem__(self, track_id: int) -> Track:
        try:
            return self._tracks[track_id]
        except KeyError:
            raise KeyError(f"track {track_id}: not in the lineage (its tracks: {self._summary()})") from None

    def __contains__(self, track_id: object) -> bool:
        return track_id in self._tracks

    def __iter__(self) -> Iterator[Track]:
        """The tracks in id order."""
        return iter(sorted(self._tracks.values(), key=lambda track: track.track_id))

    def __len__(self) -> int:
        return len(self._tracks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lineage) and self._tracks == other._tracks

    def __repr__(self) -> str:
        return f"Lineage({list(self)!r})"

    def children(self, track_id: int) -> list[int]:
        """The ids of the tracks whose parent is ``track_id``, in order."""
        return sorted(track.track_id for track in self._tracks.values() if track.parent == track_id)

    def on_frame(self, frame: int) -> list[int]:
        """The ids of the tracks present on ``frame``, in order."""
        return sorted(track.track_id for track in self._tracks.values() if track.first <= frame <= track.last)

    def next_id(self) -> int:
        """The id after the largest one (1 when empty)."""
        next_id = max(self._tracks, default=0) + 1
        if next_id > MAX_TRACK_ID:
            raise LineageError(f"no track id left after {MAX_TRACK_ID} (16-bit labels); renumber the tracks")
        return next_id

    @property
    def num_frames(self) -> int:
        """One past the last frame of any track (0 when empty)."""
        return max((track.last + 1 for track in self._tracks.values()), default=0)

    # --- changing --------------------------------------------------------------------------------------------
    def add(self, track_id: int, first: int, last: int | None = None, parent: int = 0) -> Track:
        """Add track ``track_id`` present from ``first`` to ``last`` (default ``first``), a child of ``parent``."""
        if track_id in self._tracks:
            raise LineageError(f"track {track_id}: already in the lineage; pick a new id such as {self.next_id()}")
        track = Track(track_id, first, first if last is None else last, parent)
        self._check_parent(track)
        self._tracks[track_id] = track
        return track

    def end(self, track_id: int, last: int) -> Track:
        """Track ``track_id`` now ends on frame ``last`` (earlier or later than before)."""
        track = replace(self[track_id], last=last)
        for child in self.children(track_id):
            if self._tracks[child].first <= last:
                raise LineageError(
                    f"track {track_id}: cannot end on frame {last}: its child {child} starts on frame "
                    f"{self._tracks[child].first}, and a parent must end before its children begin"
                )
        self._tracks[track_id] = track
        return track

    def extend(self, track_id: int, frame: int) -> Track:
        """Track ``track_id`` is also present on ``frame``: its range grows to cover it."""
        track = self[track_id]
        if track.first <= frame <= track.last:
            return track
        if frame < track.first:
            grown = replace(track, first=frame)
            self._check_parent(grown)
            self._tracks[track_id] = grown
            return grown
        return self.end(track_id, frame)

    # --- CTC text --------------------------------------------------------------------------------------------
    def to_ctc_text(self) -> str:
        """The ``res_track.txt`` / ``man_track.txt`` content: one ``L B E P`` line per track, in id order."""
        return "".join(track.ctc_line() + "\n" for track in self)

    @classmethod
    def from_ctc_text(cls, text: str, source: str = "the track file") -> Lineage:
        """The lineage in ``L B E P`` lines (spaces or tabs; blank lines skipped); errors name ``source`` and line."""
        tracks = []
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 4 or not all(_is_whole_number(field) for field in fields):
                raise LineageError(
                    f"{source}, line {number}: {line.strip()[:80]!r} is not 'L B E P' (four whole numbers: "
                    "label, first frame, last frame, parent label or 0)"
                )
            try:
                tracks.append(Track(*(int(field) for field in fields)))
            except LineageError as error:
                raise LineageError(f"{source}, line {number}: {error}") from None
        try:
            return cls(tracks)
        except LineageError as error:
            raise LineageError(f"{source}: {error}") from None

    @classmethod
    def read(cls, path: str | os.PathLike) -> Lineage:
        """The lineage in a ``res_track.txt`` / ``man_track.txt`` file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{path}: no such track file; a CTC folder holds res_track.txt or man_track.txt"
            ) from None
        except UnicodeDecodeError:
            raise LineageError(f"{path}: not a text file of 'L B E P' lines") from None
        return cls.from_ctc_text(text, str(path))

    def write(self, path: str | os.PathLike) -> None:
        """Write the ``L B E P`` lines to ``path`` atomically (the previous file stays if writing fails)."""
        from .atomic import write_text

        write_text(path, self.to_ctc_text())

    # --- helpers ---------------------------------------------------------------------------------------------
    def _check_parent(self, track: Track) -> None:
        if track.parent == 0:
            return
        parent = self._tracks.get(track.parent)
        if parent is None:
            raise LineageError(
                f"track {track.track_id}: parent {track.parent} is not a track; add the parent first or set 0"
            )
        if parent.last >= track.first:
            raise LineageError(
                f"track {track.track_id}: starts on frame {track.first} but its parent {parent.track_id} ends on "
                f"frame {parent.last}; a parent must end before its children begin"
            )

    def _summary(self) -> str:
        ids = sorted(self._tracks)
        if not ids:
            return "none"
        return ", ".join(map(str, ids[:20])) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")


def _is_whole_number(text: str) -> bool:
    return text.isascii() and text.lstrip("-").isdigit()
