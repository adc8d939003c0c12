"""Each endpoint's peak memory against its largest allowed input, on `python app.py`.

    .venv/bin/python benchmarks/bench_memory.py [--checkpoint P] [--quick]

The largest allowed photo for memory is an 80 MP PNG (the pixel cap; no JPEG draft() to decode
it smaller; a plain background keeps it under the 25 MB upload limit); a request holds at most
1.5 gigapixels (images.MAX_REQUEST_PIXELS). Each call is measured on a fresh server, warmed up by
one small /compare, its peak (VmHWM) reset just before: /compare of two such PNGs, /odd_one_out
of three, /flag of that pair (the originals re-encoded without metadata), /rank of a reference
and 17 of them (18 x 80 MP = 1.44 GP), /rank of six 50 MP JPEGs (the issue's case) and
/download_flags. Prints the rise of the server's peak above its resident size before the call,
in MB, as JSON.
--quick: 20 MP photos and 5 ranked, to try the script; --only flag: only the calls so named.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from PIL import Image  # noqa: E402

from served_app import TOKEN, ServedApp, big_jpeg  # noqa: E402


def big_png(path: Path, megapixels: float) -> Path:
    """An RGB PNG of `megapixels` with the astronaut's face on a plain background."""
    from skimage import data
    width = round((megapixels * 1e6 * 1.5) ** 0.5)
    canvas = Image.new("RGB", (width, round(width / 1.5)), (200, 210, 220))
    side = canvas.height // 2
    canvas.paste(Image.fromarray(data.astronaut()).resize((side, side)), (width // 3, side // 2))
    canvas.save(path, compress_level=1)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="measure only the calls whose name has this")
    args = parser.parse_args(argv)
    mp, ranked = (20, 5) if args.quick else (80, 17)
    work = Path(tempfile.mkdtemp(prefix="fecsim-memory-"))
    png = big_png(work / "big.png", mp)
    jpegs = [big_jpeg(work / f"jpeg-{i}.jpg", 50 if not args.quick else 20, i) for i in range(6)]
    small = big_jpeg(work / "small.jpg", 0.5)
    results = {"png_megapixels": mp, "png_mb": round(png.stat().st_size / 1e6, 1)}

    def measure(name, *inputs, api_name, before=None):
        """One call on a fresh server (memory a call freed stays in the process: the next
        call would reuse it unseen); the rise of its peak above the warm server's size."""
        if args.only not in name:
            return
        with ServedApp(work / f"server-{len(results)}", args.checkpoint) as app:
            client = Client(app.url, verbose=False, analytics_enabled=False)
            client.predict(handle_file(str(small)), handle_file(str(small)), api_name="/compare")
            if before:
                before(client)
            app.reset_peak()
            resident, start = app.status("VmRSS"), time.perf_counter()
            try:
                client.predict(*inputs, api_name=api_name)
            except AppError as exc:
                results[name] = f"FAILED: {exc}"
            else:
                results[name] = {"peak_rise_mb": round(app.status("VmHWM") - resident),
                                 "seconds": round(time.perf_counter() - start, 1),
                                 "resident_before_mb": round(resident)}
        print(name, results[name], file=sys.stderr, flush=True)

    photo = handle_file(str(png))
    measure(f"compare 2 x {mp} MP PNG", photo, photo, api_name="/compare")
    measure(f"odd_one_out 3 x {mp} MP PNG", photo, photo, photo, api_name="/odd_one_out")
    measure(f"flag 2 x {mp} MP PNG", "different expression", True, api_name="/flag",
            before=lambda client: client.predict(photo, photo, api_name="/compare"))
    measure(f"rank 1 + {ranked} x {mp} MP PNG", photo, [photo] * ranked, api_name="/rank")
    jpeg_mp = 50 if not args.quick else 20
    measure(f"rank 6 x {jpeg_mp} MP JPEG", handle_file(str(small)),
            [handle_file(str(p)) for p in jpegs], api_name="/rank")
    measure("download_flags", TOKEN, api_name="/download_flags")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
