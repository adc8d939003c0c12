"""How long users' photos stay: every file under the app's temporary folders is deleted once it
is older than its age limit, in sub-folders too (a captured photo sits in its own capture-*/
folder), and emptied folders go with them.

Gradio deletes only the cached files its running process created: uploads cached before a crash
or a restart would stay for good. So the app sweeps gradio's upload cache and its own folders
at start-up, and again every so often while it runs. In gradio's cache it deletes only files
last changed before the app started (`changed_before`): the running gradio keeps what it made
itself (the examples' copies among them) and deletes it on its own schedule.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path


def sweep(folder, max_age: float, now: float | None = None,
          changed_before: float = float("inf")) -> int:
    """Delete every file under `folder` (recursively) last changed more than `max_age` seconds
    ago (and before `changed_before`, a time.time()), then every emptied sub-folder; returns how
    many files went. Symlinks are removed as files, never followed. Files removed meanwhile by
    someone else are no error."""
    now = time.time() if now is None else now
    removed = 0
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return 0
    for root, dirs, files in os.walk(folder, topdown=False):   # children before their folder
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            try:
                changed = os.lstat(path).st_mtime
                if now - changed > max_age and changed < changed_before:
                    os.unlink(path)
                    removed += 1
            except OSError:
                pass   # gone already, or not ours to delete
        if root != str(folder):
            try:
                os.rmdir(root)   # only succeeds when empty
            except OSError:
                pass
    return removed


class Sweeper:
    """Sweeps some folders when asked, at most every `every` seconds (cheap to call often)."""

    def __init__(self, folders, max_age: float, every: float,
                 changed_before: float = float("inf")):
        self.folders, self.max_age, self.every = [Path(f) for f in folders], max_age, every
        self.changed_before = changed_before
        self._lock = threading.Lock()
        self._last = -float("inf")

    def now(self) -> int:
        """Sweep every folder at once (at start-up); returns how many files went."""
        with self._lock:
            self._last = time.monotonic()
        return self._sweep()

    def maybe(self) -> int:
        """Sweep when the last sweep is `every` seconds old; returns how many files went."""
        with self._lock:
            if time.monotonic() - self._last < self.every:
                return 0
            self._last = time.monotonic()
        return self._sweep()

    def _sweep(self) -> int:
        return sum(sweep(folder, self.max_age, changed_before=self.changed_before)
                   for folder in self.folders)
