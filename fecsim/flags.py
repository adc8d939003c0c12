"""Flags: answers users said were wrong, stored for relabelling, and exported as training pairs.

Storage (PairFlagLogger) keeps each flag in its own folder under the flagging directory:

    flagged/<timestamp>-<id>/original_a.<ext>, original_b.<ext>, crop_a.png, crop_b.png, flag.json

The folder is written under a hidden temporary name (files fsynced) and then renamed into place
with one atomic os.rename, so a crash or kill mid-flag leaves at most an ignored `.tmp-*` folder:
never a half-written record, and earlier flags are never touched. Such leftovers hold users'
photos, so they are removed once older than TMP_MAX_AGE. A record that cannot be read (a disk
that filled up, a hand edit) is skipped with a warning naming it. Every flag has its own folder, so
concurrent flags cannot interleave; a lock keeps the returned count consistent.

    python -m fecsim export-flags flagged/ --out pairs.csv

writes a CSV (a, b, same + provenance columns) of the crops the model saw with the users' labels,
which `train.py --extra_pairs=pairs.csv` mixes into training.
"""
from __future__ import annotations

import csv
import datetime
import io
import json
import logging
import os
import shutil
import threading
import time
import uuid
import zipfile
from pathlib import Path

from PIL import Image

from .files import atomic_path
from .images import FORMATS, format_of

RECORD = "flag.json"
TMP_MAX_AGE = 3600   # seconds: a flag still unfinished after this was killed mid-write
REQUIRED = ("flag_id", "timestamp", "user_answer", "same", "model_probability", "model_verdict",
            "box_a", "box_b", "checkpoint_sha256", "checkpoint", "files")
log = logging.getLogger(__name__)
ANSWERS = {"same expression": 1, "different expression": 0}
EXPORT_COLUMNS = ("a", "b", "same", "model_probability", "model_verdict", "user_answer",
                  "original_a", "original_b", "box_a", "box_b", "checkpoint_sha256",
                  "checkpoint", "timestamp", "flag_id")


class PairFlagLogger:
    """Stores a flagged comparison: both originals, both crops, and what the model and user said.

    flag_data is [original_a, original_b, crop_a, crop_b, result] where the originals are image
    file paths, the crops PIL images or paths, and result a dict with at least probability,
    verdict, box_a, box_b and checkpoint_sha256. flag_option is the user's answer: "same
    expression" or "different expression".
    """

    def __init__(self, flagging_dir):
        self._lock = threading.Lock()
        self.flagging_dir = Path(flagging_dir)
        self.flagging_dir.mkdir(parents=True, exist_ok=True)
        remove_unfinished(self.flagging_dir)

    def flag(self, flag_data, flag_option=None, username=None) -> int:
        if flag_option not in ANSWERS:
            raise ValueError(f"the right answer must be one of {sorted(ANSWERS)}, "
                             f"got {flag_option!r}")
        remove_unfinished(self.flagging_dir)
        original_a, original_b, crop_a, crop_b, result = flag_data
        now = datetime.datetime.now(datetime.timezone.utc)
        flag_id = f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
        tmp = self.flagging_dir / f".tmp-{flag_id}"
        tmp.mkdir()
        try:
            files = {"original_a": _copy_image(original_a, tmp, "original_a"),
                     "original_b": _copy_image(original_b, tmp, "original_b"),
                     "crop_a": _save_png(crop_a, tmp / "crop_a.png"),
                     "crop_b": _save_png(crop_b, tmp / "crop_b.png")}
            record = {
                "flag_id": flag_id, "timestamp": now.isoformat(), "username": username,
                "user_answer": flag_option, "same": ANSWERS[flag_option],
                "model_probability": float(result["probability"]),
                "model_verdict": result["verdict"],
                "box_a": list(result["box_a"]), "box_b": list(result["box_b"]),
                "checkpoint_sha256": result["checkpoint_sha256"],
                "checkpoint": result.get("checkpoint", ""),
                "files": files,
            }
            _write_synced(tmp / RECORD, json.dumps(record, indent=2).encode())
            _fsync_dir(tmp)
            # The one step that makes the flag exist: an atomic rename of the complete folder.
            os.rename(tmp, self.flagging_dir / flag_id)
            _fsync_dir(self.flagging_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        with self._lock:
            return len(read_flags(self.flagging_dir))


def read_flags(flag_dir) -> list[dict]:
    """Every complete flag under flag_dir, oldest first, with its folder as "dir"."""
    flag_dir = Path(flag_dir)
    records = []
    for path in sorted(flag_dir.glob(f"*/{RECORD}")):
        if path.parent.name.startswith("."):
            continue  # an unfinished flag (killed before its rename): not a flag
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            missing = [k for k in REQUIRED if k not in record]
        except (OSError, ValueError, TypeError) as exc:   # ValueError: bad JSON or UTF-8
            missing = [f"unreadable ({exc})"]
        if missing:
            log.warning("%s: skipped, not a complete flag record (missing %s)", path,
                        ", ".join(missing))
            continue
        record["dir"] = path.parent
        records.append(record)
    return sorted(records, key=lambda r: (str(r["timestamp"]), str(r["flag_id"])))


def remove_unfinished(flag_dir) -> None:
    """Delete `.tmp-*` folders older than TMP_MAX_AGE: flags killed mid-write, holding photos."""
    for folder in Path(flag_dir).glob(".tmp-*"):
        try:
            if time.time() - folder.stat().st_mtime > TMP_MAX_AGE:
                shutil.rmtree(folder)
        except OSError:
            pass   # removed meanwhile by another thread or process


def export_flags(flag_dir, out_csv) -> int:
    """Write the flags as labelled pairs of crops (PairsCSV format, paths relative to the CSV).

    Returns how many pairs were written. The CSV is written to a temporary name and renamed.
    """
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    base = out_csv.resolve().parent
    rows = []
    for r in read_flags(flag_dir):
        def rel(key):
            return os.path.relpath((r["dir"] / r["files"][key]).resolve(), base)  # noqa: B023 (this r)
        rows.append({
            "a": rel("crop_a"), "b": rel("crop_b"), "same": r["same"],
            "model_probability": r["model_probability"], "model_verdict": r["model_verdict"],
            "user_answer": r["user_answer"], "original_a": rel("original_a"),
            "original_b": rel("original_b"), "box_a": " ".join(f"{v:g}" for v in r["box_a"]),
            "box_b": " ".join(f"{v:g}" for v in r["box_b"]),
            "checkpoint_sha256": r["checkpoint_sha256"], "checkpoint": r["checkpoint"],
            "timestamp": r["timestamp"], "flag_id": r["flag_id"]})
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


PERSISTENT_STORAGE = Path("/data")   # a Hugging Face Space's persistent storage, when attached


def default_flag_dir() -> Path:
    """/data/flagged where persistent storage is attached and writable, else flagged/ (which on
    a Space is wiped at every restart)."""
    if PERSISTENT_STORAGE.is_dir() and os.access(PERSISTENT_STORAGE, os.W_OK):
        return PERSISTENT_STORAGE / "flagged"
    return Path("flagged")


def zip_flags(flag_dir, out_zip) -> int:
    """Every complete flag folder in one zip, laid out as `export-flags` reads them; returns how
    many. Unfinished (`.tmp-*`) folders are left out."""
    flag_dir, out_zip = Path(flag_dir), Path(out_zip)
    folders = sorted(p.parent for p in flag_dir.glob(f"*/{RECORD}")
                     if not p.parent.name.startswith("."))
    with atomic_path(out_zip) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for folder in folders:
            for file in sorted(folder.iterdir()):
                z.write(file, f"flagged/{folder.name}/{file.name}")
    return len(folders)


def _copy_image(source, folder: Path, stem: str) -> str:
    if isinstance(source, Image.Image):
        return _save_png(source, folder / f"{stem}.png")
    with open(source, "rb") as f:
        data = f.read()
    # Named by the format found in the bytes, never by the upload's own name (say, a.php).
    name = stem + FORMATS.get(format_of(io.BytesIO(data)), ".img")
    _write_synced(folder / name, data)
    return name


def _save_png(image, path: Path) -> str:
    if not isinstance(image, Image.Image):
        image = Image.open(image)
    with open(path, "wb") as f:
        image.save(f, format="PNG")
        f.flush()
        os.fsync(f.fileno())
    return path.name


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

