"""Files: writing one so that readers see the old version or the new one, never half of one; and
where the folders that ship with fecsim are."""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from importlib import resources
from pathlib import Path


@contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` to write; renamed onto `path` when the block ends
    without an error, deleted when it raises. Unique per call, so concurrent writers never share one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def shipped(folder: str) -> Path:
    """A folder that ships with fecsim (checkpoints, examples): inside the installed package, where
    pyproject.toml puts it as package data, else at the top of the source tree."""
    installed = Path(str(resources.files("fecsim") / folder))
    return installed if installed.is_dir() else Path(__file__).resolve().parent.parent / folder
