"""Operator parameters: one dataclass per operator, built from ``ctx.params``, holds every default once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import TypeVar

Params = TypeVar("Params")


def from_params(cls: type[Params], params: Mapping) -> Params:
    """``cls`` from a form's ``ctx.params``: fields the form left empty (None or "") take ``cls``'s defaults.

    Keys that are not fields of ``cls`` (form-only inputs, FiftyOne's own) are ignored.
    """
    names = {f.name for f in fields(cls)}
    return cls(**{name: value for name, value in params.items() if name in names and value not in (None, "")})
