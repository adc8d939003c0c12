"""The errors fecsim raises for bad input: each says which input (source) and why (reason)."""
from __future__ import annotations


class FecsimError(ValueError):
    """Base class: a user-facing problem with an input, never a bug.

    source: which input (a file, a CSV row, an in-memory image's description), or None;
    reason: what is wrong with it. str() is "source: reason"."""

    def __init__(self, reason: str, source: str | None = None):
        super().__init__(f"{source}: {reason}" if source else reason)
        self.reason, self.source = reason, source


class ImageError(FecsimError):
    """The file is not a readable image, or is too large to decode safely."""


class NoFaceError(FecsimError):
    """Face detection found no face, so no verdict can be given."""


class BoxError(FecsimError):
    """A face box given by the caller is malformed or falls outside the image."""


class CheckpointError(FecsimError):
    """A checkpoint is missing, truncated or does not match this code."""
