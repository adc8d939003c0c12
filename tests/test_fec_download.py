"""The FEC downloader against an HTTP server on 127.0.0.1 that this test starts: photos, a 404,
a non-image, a truncated JPEG, a response slower than the timeout, a flaky 503; then a rerun."""
import io
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from fec_testdata import row, write_csv
from fecsim.train.fec.__main__ import main
from fecsim.train.fec.download import LOG, Options, crop_path, download
from fecsim.train.fec.reader import FaceRef

RED, BLUE = (230, 20, 20), (20, 20, 230)


def jpeg(width=120, height=100) -> bytes:
    """Left half red, right half blue: a crop's centre says which half its box was in."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2], pixels[:, width // 2:] = RED, BLUE
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=95)
    return out.getvalue()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits, self.lock, self.slow_delay, self.image = Counter(), threading.Lock(), 1.5, jpeg()

    def url(self, name):
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, code, body, kind="image/jpeg"):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        server = self.server
        name = self.path.lstrip("/")
        with server.lock:
            server.hits[name] += 1
            hits = server.hits[name]
        if name.startswith("photo"):
            self.send(200, server.image)
        elif name == "missing.jpg":
            self.send(404, b"not found", "text/html")
        elif name == "text.jpg":
            self.send(200, b"<html>this page moved</html>", "text/html")
        elif name == "truncated.jpg":
            self.send(200, server.image[: len(server.image) // 2])
        elif name == "flaky.jpg":
            self.send(503, b"busy", "text/plain") if hits == 1 else self.send(200, server.image)
        elif name == "drip.jpg":   # a byte at a time, each well inside a per-read timeout
            self.send_response(200)
            self.send_header("Content-Length", str(len(server.image)))
            self.end_headers()
            try:
                for byte in server.image[:60]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass  # the client gave up, as it should
        elif name == "slow.jpg":
            time.sleep(server.slow_delay)
            try:
                self.send(200, server.image)
            except OSError:
                pass  # the client gave up waiting, as it should
        else:
            self.send(404, b"", "text/plain")


@pytest.fixture
def server():
    s = Server()
    thread = threading.Thread(target=s.serve_forever, daemon=True)
    thread.start()
    yield s
    s.shutdown()
    s.server_close()


LEFT, RIGHT = (0.1, 0.4, 0.3, 0.7), (0.6, 0.9, 0.3, 0.7)     # FEC order: x0/w, x1/w, y0/h, y1/h
BAD = (0.8, 0.2, 0.3, 0.7)                                    # x1 < x0


def fec_csv(tmp_path, server):
    u = server.url
    triplets = [
        ([(u("photo1.jpg"), LEFT), (u("photo1.jpg"), RIGHT), (u("photo2.jpg"), LEFT)], [1] * 6),
        ([(u("photo2.jpg"), BAD), (u("flaky.jpg"), RIGHT), (u("missing.jpg"), LEFT)], [2] * 6),
        ([(u("text.jpg"), LEFT), (u("truncated.jpg"), LEFT), (u("slow.jpg"), RIGHT)], [3] * 6),
        ([(u("photo1.jpg"), LEFT), (u("photo3.jpg"), RIGHT), (u("slow.jpg"), RIGHT)], [1] * 6),
    ]
    lines = [row(faces, "TWO_CLASS_TRIPLET", answers) for faces, answers in triplets]
    lines.insert(2, "a malformed line")
    return write_csv(tmp_path / "train.csv", lines)


def options(**kw):
    return Options(**{**dict(size=32, margin=0.1, workers=4, timeout=0.5, retries=1, backoff=0.05),
                      **kw})


def log_entries(out):
    return [json.loads(line) for line in (out / LOG).read_text().splitlines()]


def test_download_crops_checks_and_resumes(tmp_path, server):
    csv, out = fec_csv(tmp_path, server), tmp_path / "fec"
    started = time.monotonic()
    summary = download([csv], out, options(), progress=False)
    assert time.monotonic() - started < 20
    assert summary["urls"] == 8
    assert (summary["ok"], summary["dead"], summary["not_image"]) == (4, 2, 2)
    assert summary["faces_cropped"] == 5 and summary["bad_box"] == 1
    # Each distinct URL fetched once, though photo1 names two faces in three rows.
    assert server.hits["photo1.jpg"] == 1 and server.hits["photo2.jpg"] == 1
    assert server.hits["missing.jpg"] == 1            # a 404 is not retried
    assert server.hits["flaky.jpg"] == 2              # a 503 is, after a backoff
    assert server.hits["slow.jpg"] == 2               # timed out twice (1 retry)

    u = server.url
    left, right = crop_path(out, FaceRef(u("photo1.jpg"), LEFT)), crop_path(out, FaceRef(u("photo1.jpg"), RIGHT))
    for path, colour in ((left, RED), (right, BLUE)):
        crop = Image.open(path)
        assert crop.size == (32, 32) and crop.mode == "RGB"
        assert np.abs(np.asarray(crop)[16, 16].astype(int) - colour).max() < 40
    assert not crop_path(out, FaceRef(u("photo2.jpg"), BAD)).exists()
    assert not list(out.rglob("*.part")) and not list(out.glob("*.download"))

    by_url = {e["url"].rsplit("/", 1)[1]: e for e in log_entries(out)}
    assert by_url["missing.jpg"]["status"] == "dead" and "404" in by_url["missing.jpg"]["reason"]
    assert by_url["slow.jpg"]["status"] == "dead" and "timeout" in by_url["slow.jpg"]["reason"]
    assert by_url["text.jpg"]["status"] == "not_image"
    assert by_url["truncated.jpg"]["status"] == "not_image"
    assert by_url["photo2.jpg"]["bad_box"] == 1 and by_url["photo2.jpg"]["faces_ok"] == 1

    # Rerun (through the CLI) after the slow host recovered and photo3's crop was lost as if the
    # first run had been killed before logging it: done URLs are skipped, failures retried.
    server.slow_delay = 0.0
    crop_path(out, FaceRef(u("photo3.jpg"), RIGHT)).unlink()
    (out / LOG).write_text("\n".join(json.dumps(e) for e in log_entries(out)
                                     if not e["url"].endswith("photo3.jpg")) + "\n")
    hits_before = Counter(server.hits)
    assert main(["download", str(csv), "--out", str(out), "--size", "32", "--timeout", "0.5",
                 "--retries", "1", "--backoff", "0.05", "--quiet"]) == 0
    fetched = server.hits - hits_before
    assert set(fetched) == {"photo3.jpg", "missing.jpg", "text.jpg", "truncated.jpg", "slow.jpg"}
    assert crop_path(out, FaceRef(u("slow.jpg"), RIGHT)).is_file()
    assert crop_path(out, FaceRef(u("photo3.jpg"), RIGHT)).is_file()


def test_rerun_with_other_crop_settings_is_refused(tmp_path, server):
    csv, out = fec_csv(tmp_path, server), tmp_path / "fec"
    download([csv], out, options(timeout=0.2, retries=0), progress=False)
    assert main(["download", str(csv), "--out", str(out), "--size", "64", "--quiet"]) == 2


# --- Reliability (README): a new box on a known photo, and a deadline per attempt. ---

def test_a_new_box_on_a_photo_already_downloaded_is_cropped(tmp_path, server):
    u, out = server.url, tmp_path / "fec"
    first = write_csv(tmp_path / "first.csv", [row([(u("photo1.jpg"), LEFT), (u("photo2.jpg"), LEFT),
                                                    (u("photo3.jpg"), LEFT)], "ONE_CLASS_TRIPLET", [1] * 6)])
    assert download([first], out, options(), progress=False)["faces_cropped"] == 3
    later = write_csv(tmp_path / "later.csv", [row([(u("photo1.jpg"), RIGHT), (u("photo2.jpg"), LEFT),
                                                    (u("photo3.jpg"), LEFT)], "ONE_CLASS_TRIPLET", [1] * 6)])
    summary = download([first, later], out, options(), progress=False)
    assert summary["fetched"] == 1 and summary["faces_cropped"] == 2   # photo1 again, both boxes
    assert crop_path(out, FaceRef(u("photo1.jpg"), RIGHT)).is_file()
    assert server.hits["photo1.jpg"] == 2 and server.hits["photo2.jpg"] == 1


def test_a_server_sending_a_byte_at_a_time_meets_the_deadline(tmp_path, server):
    csv = write_csv(tmp_path / "drip.csv", [row([(server.url("drip.jpg"), LEFT), (server.url("photo1.jpg"), LEFT),
                                                 (server.url("photo2.jpg"), LEFT)], "ONE_CLASS_TRIPLET", [1] * 6)])
    started = time.monotonic()
    download([csv], tmp_path / "fec", options(timeout=0.5, retries=0), progress=False)
    assert time.monotonic() - started < 2.5           # 60 bytes x 0.1 s would take 6 s
    by_url = {e["url"].rsplit("/", 1)[1]: e for e in log_entries(tmp_path / "fec")}
    assert by_url["drip.jpg"]["status"] == "dead" and "timeout" in by_url["drip.jpg"]["reason"]
