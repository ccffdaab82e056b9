"""Argument types the library's commands share (`argparse` ``type=`` callables)."""

from __future__ import annotations

import argparse


def at_least_one(text: str) -> int:
    """A whole number of 1 or more, else an argparse error saying which."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number}: must be at least 1")
    return number
