"""The errors fecsim raises for bad input: each names the file and the reason."""


class FecsimError(ValueError):
    """Base class: a user-facing problem with an input, never a bug."""


class ImageError(FecsimError):
    """The file is not a readable image, or is too large to decode safely."""


class NoFaceError(FecsimError):
    """Face detection found no face, so no verdict can be given."""


class BoxError(FecsimError):
    """A face box given by the caller is malformed or falls outside the image."""


class CheckpointError(FecsimError):
    """A checkpoint is missing, truncated or does not match this code."""
