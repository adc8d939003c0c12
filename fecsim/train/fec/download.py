"""Downloading FEC's photos: each URL fetched once, many at a time, each face cropped by its box and
cached at a fixed size, so that training never decodes a full photo again.

Layout of the output folder:
    crops/<2 hex>/<key>.jpg   one face (key = hash of URL and box), written atomically
    fec_crops.json            the crop settings (size, margin): a rerun must use the same ones
    download_log.jsonl        one line per URL attempt: status, reason, faces cropped
A rerun skips URLs whose faces are all cached (or, after an ok attempt, had a bad box) and fetches
the rest: failures, and photos a later CSV names with a new face box.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import random
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from ...errors import BoxError, FecsimError, ImageError
from ...files import atomic_path
from ...faces import FaceCropper, check_box, fec_box_to_pixels
from ...images import load_image
from ...view import Framing, View
from .reader import FaceRef, read_triplets

CROPS, SETTINGS, LOG = "crops", "fec_crops.json", "download_log.jsonl"
USER_AGENT = "fecsim-fec-downloader/1.0"
# Answers that will not change on a retry; everything else (timeouts, 5xx, 429, resets) is retried.
PERMANENT_HTTP = {400, 401, 403, 404, 410, 451}


@dataclass
class Options:
    size: int = 224            # side of the cached square crops (FECNet's input size)
    margin: float = 0.1        # box widened by this share per side before cropping
    workers: int = 32          # parallel downloads: the work is waiting on the network
    timeout: float = 10.0      # seconds an attempt may take to connect and read the whole body
    retries: int = 3
    backoff: float = 1.0       # seconds before the first retry, doubling after each
    max_bytes: int = 30_000_000
    quality: int = 95          # JPEG quality of the cached crops
    skip_failed: bool = False  # skip URLs whose last attempt was dead / not an image


class Dead(Exception):
    """The URL gave no image bytes (HTTP error, timeout, connection failure, bad URL)."""


class NotImage(Exception):
    """The URL answered, but not with a readable image."""


def face_key(face: FaceRef) -> str:
    box = ",".join(repr(float(v)) for v in face.box)
    return hashlib.sha1(f"{face.url}\t{box}".encode()).hexdigest()[:24]


def crop_path(root, face: FaceRef) -> Path:
    key = face_key(face)
    return Path(root) / CROPS / key[:2] / f"{key}.jpg"


def read_settings(root) -> dict:
    path = Path(root) / SETTINGS
    if not path.is_file():
        raise FecsimError(source=str(root), reason=f"no {SETTINGS}; make the crops with python -m fecsim.train.fec download")
    return json.loads(path.read_text())


def fetch(url: str, options: Options) -> bytes:
    """The body of url, with retries and exponential backoff on transient failures."""
    last = "no attempt"
    for attempt in range(options.retries + 1):
        if attempt:
            time.sleep(options.backoff * 2 ** (attempt - 1) * random.uniform(0.75, 1.25))
        deadline = time.monotonic() + options.timeout
        try:
            with urlopen(Request(url, headers={"User-Agent": USER_AGENT}),
                         timeout=options.timeout) as response:
                final = response.geturl()
                data = _read_by(response, options.max_bytes + 1, deadline)
        except HTTPError as exc:
            if exc.code in PERMANENT_HTTP:
                raise Dead(f"HTTP {exc.code}") from None
            last = f"HTTP {exc.code}"
            continue
        except (TimeoutError, socket.timeout):
            last = f"timeout after {options.timeout:g} s"
            continue
        except URLError as exc:
            last = f"connection failed ({exc.reason})"
            continue
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
            continue
        except ValueError as exc:  # unknown scheme, non-ASCII or otherwise unusable URL
            raise Dead(f"bad URL ({exc})") from None
        if len(data) > options.max_bytes:
            raise NotImage(f"over {options.max_bytes} bytes")
        # Photo hosts redirect a deleted photo to a "photo unavailable" placeholder image.
        if final != url and "unavailable" in final.lower():
            raise Dead(f"redirected to a placeholder ({final})")
        return data
    raise Dead(last)


def _read_by(response, limit: int, deadline: float) -> bytes:
    """Up to limit bytes of the body, or TimeoutError once past the deadline: the socket's timeout
    is per read, which a server sending a byte now and then resets forever. (A read that stalls
    can still take one timeout more.)"""
    chunks, size = [], 0
    while size < limit:
        if time.monotonic() > deadline:
            raise TimeoutError
        chunk = response.read1(min(1 << 16, limit - size))   # what has arrived, not all of it
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def save_atomic(image, path: Path, quality: int) -> None:
    """Write then rename: an interrupted run never leaves a partial file under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        image.save(tmp, format="JPEG", quality=quality)


def process_url(url: str, faces: list[FaceRef], root: Path, options: Options) -> dict:
    """Fetch one photo, check it is an image, crop and cache each of its faces. Never raises."""
    start = time.monotonic()
    result = {"url": url, "status": "ok", "reason": "", "faces_ok": 0, "bad_box": 0,
              "bad_box_faces": []}
    try:
        data = fetch(url, options)
        try:   # the one safe decoder: size limits, truncation checks
            image = load_image(data)
        except ImageError as exc:
            raise NotImage(f"content: {exc.reason}") from None
        cropper = FaceCropper(View(input_size=options.size, grey=False,
                                   face=Framing(margin=options.margin)))
        for face in faces:
            try:
                box = check_box(fec_box_to_pixels(face.box, image.width, image.height),
                                image.width, image.height, url)
            except BoxError as exc:
                result["bad_box"] += 1
                result["bad_box_faces"].append(face_key(face))   # no refetch will crop it
                result["reason"] = str(exc)
                continue
            save_atomic(cropper.crop(image, box), crop_path(root, face), options.quality)
            result["faces_ok"] += 1
    except Dead as exc:
        result.update(status="dead", reason=str(exc))
    except NotImage as exc:
        result.update(status="not_image", reason=str(exc))
    except Exception as exc:  # one odd photo must not end a 150k-URL run; it is logged instead
        result.update(status="error", reason=f"{type(exc).__name__}: {exc}")
    result["seconds"] = round(time.monotonic() - start, 3)
    return result


def faces_by_url(csv_paths, log=print) -> dict[str, list[FaceRef]]:
    by_url: dict[str, dict] = {}
    for path in csv_paths:
        triplets, report = read_triplets(path)
        log(report.summary())
        for t in triplets:
            for face in t.faces:
                by_url.setdefault(face.url, {})[face] = None
    return {url: list(faces) for url, faces in by_url.items()}


def _check_settings(root: Path, options: Options) -> None:
    wanted = {"size": options.size, "margin": options.margin, "square": True}
    path = root / SETTINGS
    if path.is_file():
        have = json.loads(path.read_text())
        if {k: have.get(k) for k in wanted} != wanted:
            raise FecsimError(f"{root} holds crops made with {have}; rerun with those settings "
                              f"or choose another --out (asked for {wanted})")
    else:
        path.write_text(json.dumps(wanted, indent=2))


def _last_entries(log_path: Path) -> dict[str, dict]:
    last = {}
    if log_path.is_file():
        with open(log_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                    last[entry["url"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by a hard kill
    return last


def download(csv_paths, root, options: Options | None = None, log=print, progress=True) -> dict:
    """Fetch and crop every face the CSVs name into root; returns the counts of this run."""
    options = options or Options()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _check_settings(root, options)
    by_url = faces_by_url(csv_paths, log)
    last = _last_entries(root / LOG)
    todo, counts = [], Counter()
    for url, faces in by_url.items():
        entry = last.get(url, {})
        # Done when every face is cropped or its box was bad on this very photo. A face box only
        # a later CSV names has no crop yet: the photo is fetched again for it.
        bad_boxes = set(entry.get("bad_box_faces", [])) if entry.get("status") == "ok" else set()
        if all(crop_path(root, f).is_file() or face_key(f) in bad_boxes for f in faces):
            counts["already_done"] += 1
        elif options.skip_failed and entry.get("status") in ("dead", "not_image"):
            counts["skipped_failed"] += 1
        else:
            todo.append(url)
    log(f"{len(by_url)} distinct URLs, {sum(map(len, by_url.values()))} faces; "
        f"{counts['already_done']} URLs already done, {len(todo)} to fetch")
    pool = ThreadPoolExecutor(max_workers=max(1, options.workers))
    interrupted = False
    try:
        with open(root / LOG, "a", encoding="utf-8") as log_file, \
                tqdm(total=len(todo), unit="url", disable=not progress, mininterval=2) as bar:
            futures = [pool.submit(process_url, url, by_url[url], root, options) for url in todo]
            for future in as_completed(futures):
                result = future.result()
                log_file.write(json.dumps(result) + "\n")
                log_file.flush()  # the log is what a rerun trusts: keep it current
                counts[result["status"]] += 1
                counts["faces_ok"] += result["faces_ok"]
                counts["bad_box"] += result["bad_box"]
                bar.update()
                bar.set_postfix(ok=counts["ok"], dead=counts["dead"], refresh=False)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: every crop already written is kept; run the same command to resume")
    finally:
        # Queued URLs are dropped; ones in flight finish (their files are written atomically).
        pool.shutdown(wait=not interrupted, cancel_futures=True)
    summary = {"urls": len(by_url), "fetched": len(todo), "already_done": counts["already_done"],
               "ok": counts["ok"], "dead": counts["dead"], "not_image": counts["not_image"],
               "error": counts["error"], "faces_cropped": counts["faces_ok"],
               "bad_box": counts["bad_box"], "skipped_failed": counts["skipped_failed"],
               "interrupted": interrupted}
    log(f"URLs: {summary['ok']} ok, {summary['dead']} dead, {summary['not_image']} not an image"
        + (f", {summary['error']} other errors" if summary["error"] else "")
        + f", {summary['already_done']} already done; faces: {summary['faces_cropped']} cropped, "
        f"{summary['bad_box']} bad box; per-URL log: {root / LOG}")
    if interrupted:
        raise KeyboardInterrupt
    return summary
