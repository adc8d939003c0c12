"""Flags: answers users said were wrong, stored for relabelling, and exported as training pairs.

Storage (PairFlagLogger) keeps each flag in its own folder under the flagging directory:

    flagged/<timestamp>-<id>/original_a.<ext>, original_b.<ext>, crop_a.png, crop_b.png, flag.json

The originals are stored upright and re-encoded without their metadata (EXIF: the place a photo
was taken, the camera, the time), which nobody agreed to give; flag.json records the consent
given, the consent text's version and its time.

The folder is written under a hidden temporary name (files fsynced) and then renamed into place
with one atomic os.rename, so a crash or kill mid-flag leaves at most an ignored `.tmp-*` folder:
never a half-written record, and earlier flags are never touched. Such leftovers hold users'
photos, so they are removed once older than TMP_MAX_AGE. A record that cannot be read (a disk
that filled up, a hand edit) is skipped with a warning naming it. Every flag has its own folder, so
concurrent flags cannot interleave.

    python -m fecsim export-flags flagged/ --out pairs.csv

writes a CSV (a, b, same + provenance columns) of the crops the model saw with the users' labels,
which `train.py --extra_pairs=pairs.csv` mixes into training.
"""
from __future__ import annotations

import csv
import datetime
import json
import logging
import os
import shutil
import time
import uuid
import zipfile
from pathlib import Path

from PIL import Image

from .errors import FecsimError
from .files import atomic_path
from .images import format_of, load_image
from .text import quoted, spreadsheet_safe

RECORD = "flag.json"
TMP_MAX_AGE = 3600   # seconds: a flag still unfinished after this was killed mid-write
REQUIRED = ("flag_id", "timestamp", "user_answer", "same", "model_probability", "model_verdict",
            "box_a", "box_b", "checkpoint_sha256", "checkpoint", "files")
log = logging.getLogger(__name__)
ANSWERS = {"same expression": 1, "different expression": 0}
# What the user agrees to, as the page shows it beside its box. A changed text gets a new version,
# so that each flag says which text was agreed to (1: the text before metadata was stripped).
CONSENT_TEXT = ("I agree that both photos (without their metadata: place, camera), both face "
                "crops and my answer are stored, to relabel and retrain the model")
CONSENT_VERSION = 2
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
        self.flagging_dir = Path(flagging_dir)
        self.flagging_dir.mkdir(parents=True, exist_ok=True)
        remove_unfinished(self.flagging_dir)

    def flag(self, flag_data, flag_option=None, username=None, *, consent: bool) -> str:
        """Store one flag; returns its id. consent must be True: the user ticked CONSENT_TEXT.
        FecsimError, saying that nothing was stored, when the flag cannot be written."""
        if flag_option not in ANSWERS:
            raise ValueError(f"the right answer must be one of {sorted(ANSWERS)}, "
                             f"got {quoted(flag_option)}")
        if consent is not True:
            raise ValueError("nothing was stored: storing needs the user's consent")
        try:
            return self._store(flag_data, flag_option, username)
        except OSError as exc:   # a full disk, a folder without write permission
            raise FecsimError(f"nothing was stored: the flag could not be written "
                              f"({exc.strerror or exc})", source="flag") from None

    def _store(self, flag_data, flag_option, username) -> str:
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
                "consent": {"given": True, "text": CONSENT_TEXT, "version": CONSENT_VERSION,
                            "timestamp": now.isoformat()},
            }
            _write_synced(tmp / RECORD, json.dumps(record, indent=2).encode())
            _fsync_dir(tmp)
            # The one step that makes the flag exist: an atomic rename of the complete folder.
            os.rename(tmp, self.flagging_dir / flag_id)
            _fsync_dir(self.flagging_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return flag_id


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


def export_flags(flag_dir, out_csv) -> tuple[int, int]:
    """Write the flags as labelled pairs of crops (PairsCSV format, paths relative to the CSV).

    Returns (pairs written, records skipped): a record with a field of the wrong type, a file
    missing or named outside its own folder is skipped with a warning naming it, and the good
    flags are still exported. The CSV is written to a temporary name and renamed.
    """
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    base = out_csv.resolve().parent
    rows, skipped = [], 0
    for record in read_flags(flag_dir):
        try:
            rows.append(_export_row(record, base))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            skipped += 1
            log.warning("%s: skipped, not a usable flag record (%s)", record["dir"] / RECORD,
                        quoted(str(exc), 200))
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)
    return len(rows), skipped


def _export_row(r: dict, base: Path) -> dict:
    folder = r["dir"].resolve()

    def rel(key):
        name = r["files"][key]
        path = (folder / name).resolve() if isinstance(name, str) else None
        # Only a file inside the flag's own folder: flag.json may have been edited by anyone.
        if path is None or path.parent != folder or not path.is_file():
            raise ValueError(f"{key} must name a file in the flag's folder (got {quoted(name)})")
        return os.path.relpath(path, base)

    def box(key):
        values = [float(v) for v in r[key]]
        if len(values) != 4:
            raise ValueError(f"{key} must be four numbers")
        return " ".join(f"{v:g}" for v in values)

    if r["same"] not in (0, 1) or r["user_answer"] not in ANSWERS:
        raise ValueError(f"same/user_answer must be 0/1 and one of {sorted(ANSWERS)}")
    return {"a": rel("crop_a"), "b": rel("crop_b"), "same": int(r["same"]),
            "model_probability": float(r["model_probability"]),
            "model_verdict": str(r["model_verdict"]), "user_answer": r["user_answer"],
            "original_a": rel("original_a"), "original_b": rel("original_b"),
            "box_a": box("box_a"), "box_b": box("box_b"),
            "checkpoint_sha256": str(r["checkpoint_sha256"]), "checkpoint": str(r["checkpoint"]),
            "timestamp": str(r["timestamp"]), "flag_id": str(r["flag_id"])}


PERSISTENT_STORAGE = Path("/data")   # a Hugging Face Space's persistent storage, when attached


def default_flag_dir() -> Path:
    """/data/flagged where persistent storage is attached and writable, else flagged/ (which on
    a Space is wiped at every restart)."""
    if PERSISTENT_STORAGE.is_dir() and os.access(PERSISTENT_STORAGE, os.W_OK):
        return PERSISTENT_STORAGE / "flagged"
    return Path("flagged")


def on_a_space() -> bool:
    """Running as a Hugging Face Space (which sets SPACE_ID): only /data outlives a restart."""
    return bool(os.environ.get("SPACE_ID"))


def kept_until(flag_dir) -> str:
    """Where flags go and how long they last, for the page, from the real folder: on a Space
    only persistent storage (/data) outlives a restart; elsewhere any folder is kept."""
    if on_a_space() and not Path(flag_dir).resolve().is_relative_to(PERSISTENT_STORAGE):
        return "on this Space's disk, and kept only until the Space restarts"
    return f"in `{Path(flag_dir).name}/` on this server's disk, until its operator deletes them"


def zip_flags(flag_dir, out_zip) -> int:
    """Every complete flag folder in one zip, laid out as `export-flags` reads them; returns how
    many. Unfinished (`.tmp-*`) folders are left out, and so is every symlink (a link placed in
    the flag folder would otherwise put any file of the server into the zip)."""
    flag_dir, out_zip = Path(flag_dir), Path(out_zip)
    folders = sorted(p.parent for p in flag_dir.glob(f"*/{RECORD}")
                     if not p.parent.name.startswith(".") and not p.parent.is_symlink()
                     and not p.is_symlink())
    with atomic_path(out_zip) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for folder in folders:
            for file in sorted(folder.iterdir()):
                if file.is_file() and not file.is_symlink():
                    z.write(file, f"flagged/{folder.name}/{file.name}")
    return len(folders)


def _copy_image(source, folder: Path, stem: str) -> str:
    """The photo upright and re-encoded without metadata: a JPEG stays JPEG (quality 95), any
    other format becomes PNG. Named by the format found in the bytes, never by the upload's own
    name (say, a.php)."""
    if isinstance(source, Image.Image):
        image, jpeg = source, False
    else:
        with open(source, "rb") as f:
            jpeg = format_of(f) in ("JPEG", "MPO")
        image = load_image(source)   # EXIF orientation applied
    icc = image.info.get("icc_profile")   # colours, not personal: kept
    clean = image.copy() if image is source else image
    clean.info = {}   # EXIF (GPS, camera), XMP, comments: none is written back
    if not jpeg:
        return _save_png(clean, folder / f"{stem}.png", icc_profile=icc)
    path = folder / f"{stem}.jpg"
    with open(path, "wb") as f:
        clean.save(f, format="JPEG", quality=95, icc_profile=icc)
        f.flush()
        os.fsync(f.fileno())
    return path.name


def _save_png(image, path: Path, icc_profile=None) -> str:
    if not isinstance(image, Image.Image):
        image = Image.open(image)
    with open(path, "wb") as f:
        # Level 1: an 80 MP original encodes in seconds, not tens of them (flags are few).
        image.save(f, format="PNG", compress_level=1,
                   **({"icc_profile": icc_profile} if icc_profile else {}))
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

