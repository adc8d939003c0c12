"""Issue 18's quality bar, measured against `python app.py` on a free port with its own TMPDIR
and a flags token set:

    .venv/bin/python benchmarks/probe_safety.py [--checkpoint P] [--megapixels 50] [--photos 6]

1. /compare given {"path": <a server file nobody uploaded>} without gradio's meta is refused,
   with the same message for an existing and a missing path, and no image comes back;
2. /rank of six 50 MP JPEGs: the server's peak memory (VmHWM) rise, target < 1.5 GB;
3. a flagged photo with EXIF GPS and a device model is stored without them, flag.json has the
   consent;
4. after a download with the right token, no zip of the flags is left in TMPDIR outside
   gradio's own cache.
Prints one JSON object of figures; exit status 1 when any check fails.
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from PIL import Image  # noqa: E402

from served_app import TOKEN, ServedApp, big_jpeg  # noqa: E402


def refusal(client, value, other) -> str:
    """/compare's answer to `value` as image A: its error message, or "ANSWERED" when it ran."""
    try:
        client.predict(value, handle_file(str(other)), api_name="/compare")
        return "ANSWERED"
    except (AppError, ValueError) as exc:
        return str(exc)


def phone_photo(path: Path, source: Path) -> Path:
    exif = Image.Exif()
    exif[0x0110], exif[0x010F] = "Pixel 7 Pro", "Google"                   # model, make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)}   # GPS
    Image.open(source).save(path, exif=exif, quality=95)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
    parser.add_argument("--megapixels", type=float, default=50)
    parser.add_argument("--photos", type=int, default=6)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fecsim-probe-"))
    photos = work / "photos"
    photos.mkdir()
    face = big_jpeg(photos / "face.jpg", 0.5)
    server_file = work / "server-only" / "secret.jpg"   # on the server, never uploaded
    server_file.parent.mkdir()
    big_jpeg(server_file, 0.5, variant=9)
    big = [big_jpeg(photos / f"big-{i}.jpg", args.megapixels, variant=i) for i in range(args.photos)]
    figures, ok = {}, True
    with ServedApp(work / "server", args.checkpoint) as app:
        client = Client(app.url, verbose=False, analytics_enabled=False)
        client.predict(handle_file(str(face)), handle_file(str(face)), api_name="/compare")

        # 1. A server file named without meta.
        existing = refusal(client, {"path": str(server_file)}, face)
        missing = refusal(client, {"path": str(server_file.with_name("none.jpg"))}, face)
        figures["server_file_without_meta"] = existing
        figures["missing_file_without_meta"] = missing
        same = existing == missing
        figures["refused_alike"] = same
        ok &= "ANSWERED" not in (existing, missing) and same

        # 2. /rank of the big photos: the peak memory rise.
        app.reset_peak()
        before = app.status("VmHWM")
        gallery, ranking = client.predict(handle_file(str(face)),
                                          [handle_file(str(p)) for p in big], api_name="/rank")
        rise = app.status("VmHWM") - before
        figures["rank"] = {"photos": len(big), "megapixels_each": args.megapixels,
                           "bytes_each_mb": round(big[0].stat().st_size / 1e6, 1),
                           "ranked": sum(r["probability"] is not None for r in ranking),
                           "vmhwm_before_mb": round(before), "vmhwm_rise_mb": round(rise)}
        ok &= rise < 1500

        # 3. A flagged photo with GPS and a camera model.
        phone = phone_photo(photos / "phone.jpg", face)
        client.predict(handle_file(str(phone)), handle_file(str(face)), api_name="/compare")
        try:
            client.predict("different expression", True, api_name="/flag")
            records = sorted(app.flag_dir.glob("*/flag.json"))
            record = json.loads(records[-1].read_text())
            stored = records[-1].parent / record["files"]["original_a"]
            exif = Image.open(stored).getexif()
            figures["flag"] = {"stored": stored.name, "exif_tags": len(exif),
                               "gps": bool(exif.get_ifd(0x8825)),
                               "model_in_bytes": b"Pixel 7" in stored.read_bytes(),
                               "consent": record.get("consent")}
            ok &= (not figures["flag"]["gps"] and not figures["flag"]["model_in_bytes"]
                   and bool((record.get("consent") or {}).get("given")))
        except AppError as exc:
            figures["flag"], ok = f"FAILED: {exc}", False

        # 4. The flags zip, once downloaded.
        try:
            archive = client.predict(TOKEN, api_name="/download_flags")
            left = [str(p.relative_to(app.tmp)) for p in app.tmp.rglob("*.zip")
                    if not p.is_relative_to(app.gradio_cache)]
            figures["download"] = {"downloaded_bytes": Path(archive).stat().st_size,
                                   "zips_left_outside_gradio_cache": left}
            ok &= not left
        except AppError as exc:
            figures["download"], ok = f"FAILED: {exc}", False
    figures["ok"] = bool(ok)
    print(json.dumps(figures, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
