"""The page in a real browser: Debian's chromium driven by playwright (never a downloaded browser).

Uploads, Compare, reading the verdict and probability off the page, flagging, an error shown in the
page, and a webcam photo through chromium's fake camera fed with a real face. Screenshots go to
test-artifacts/. Every request the page makes must stay on 127.0.0.1.
"""
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from fecsim import ExpressionComparer
from fecsim.app import build_demo
from fecsim.flags import read_flags

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TIMEOUT_MS = 120_000
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def write_y4m(path: Path, rgb: np.ndarray, frames: int = 10) -> Path:
    """A YUV4MPEG2 (4:2:0) video of one still photo: what chromium's fake camera plays."""
    image = Image.fromarray(rgb)
    image = image.resize((image.width // 2 * 2, image.height // 2 * 2))
    ycc = np.asarray(image.convert("YCbCr"))
    planes = ycc[:, :, 0].tobytes() + ycc[::2, ::2, 1].tobytes() + ycc[::2, ::2, 2].tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{image.width} H{image.height} F15:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + planes)
    return path


@pytest.fixture(scope="module")
def app(random_checkpoint, tmp_path_factory):
    flag_dir = tmp_path_factory.mktemp("flagged")
    demo = build_demo(random_checkpoint, flag_dir=flag_dir)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port,
                ssr_mode=False, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", flag_dir
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, astronaut):
    camera = write_y4m(tmp_path_factory.mktemp("camera") / "astronaut.y4m",
                       np.asarray(Image.fromarray(astronaut).resize((320, 320))))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, app):
    context = browser.new_context(permissions=["camera"], viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    off_machine = []
    page.on("request", lambda r: off_machine.append(r.url)
            if urlparse(r.url).scheme in ("http", "https", "ws", "wss")
            and urlparse(r.url).hostname not in LOCAL_HOSTS else None)
    page.goto(app[0])
    page.wait_for_selector("#compare")
    yield page
    context.close()
    assert off_machine == [], f"the page reached other machines: {off_machine}"


def screenshot(page, name: str):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def wait_uploaded(page, elem_id: str):
    """Until the photo is on the server: the preview then shows it from a served file URL."""
    page.locator(f"#{elem_id} img[src*='file=']:visible").first.wait_for()


def upload(page, elem_id: str, path):
    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))
    wait_uploaded(page, elem_id)


ERROR_TOASTS = "[data-testid='toast-body'].error"


def compare_and_read(page):
    """Click Compare and wait for a verdict; fail at once, with the message, if an error shows.
    Returns (verdict, probability) as the page shows them."""
    errors_before = page.locator(ERROR_TOASTS).count()
    page.click("#compare")
    page.wait_for_function(
        """([selector, before]) => document.querySelector('#verdict textarea').value !== ''
                                   || document.querySelectorAll(selector).length > before""",
        arg=[ERROR_TOASTS, errors_before], timeout=TIMEOUT_MS)
    if page.locator(ERROR_TOASTS).count() > errors_before:
        screenshot(page, "unexpected-error")
        pytest.fail(f"the page shows an error: {page.locator(ERROR_TOASTS).last.inner_text()}")
    return (page.locator("#verdict textarea").input_value(),
            float(page.locator("#probability input").input_value()))


def test_upload_compare_and_flag(page, app, random_checkpoint, astronaut_jpg, tmp_path):
    other = tmp_path / "close-up.jpg"
    Image.open(astronaut_jpg).crop((96, 0, 352, 256)).save(other)
    upload(page, "image_a", astronaut_jpg)
    upload(page, "image_b", other)
    verdict, probability = compare_and_read(page)
    expected = ExpressionComparer.load(random_checkpoint, device="cpu").compare(astronaut_jpg, other)
    assert verdict == expected.verdict
    assert probability == pytest.approx(expected.probability, abs=1e-3)
    # The crops the model saw are on the page.
    page.locator("#crop_a img:visible").first.wait_for()
    page.locator("#crop_b img:visible").first.wait_for()

    # Flag it: the storage note is shown, then the row appears on disk.
    flag_dir = app[1]
    before = len(read_flags(flag_dir))
    sync_api.expect(page.get_by_text("are stored on this server")).to_be_visible()
    page.locator("#right_answer").get_by_text("different expression").click()
    page.click("#flag")
    sync_api.expect(page.locator("#flag_status")).to_contain_text("Flagged")
    screenshot(page, "compare-and-flag")
    flags = read_flags(flag_dir)
    assert len(flags) == before + 1
    assert flags[-1]["user_answer"] == "different expression"
    assert flags[-1]["model_probability"] == pytest.approx(expected.probability, abs=1e-3)


def test_error_is_shown_in_the_page(page, astronaut_jpg, no_face_jpg):
    upload(page, "image_a", astronaut_jpg)
    upload(page, "image_b", no_face_jpg)
    page.click("#compare")
    sync_api.expect(page.get_by_text("Image B: no face found").first).to_be_visible()
    screenshot(page, "error-no-face")
    # The app keeps serving: fix the input, get a verdict.
    upload(page, "image_b", astronaut_jpg)
    verdict, probability = compare_and_read(page)
    assert verdict in ("same expression", "different expression") and 0 <= probability <= 1


def test_webcam_photo_gets_a_verdict(page, astronaut_jpg):
    image_a = page.locator("#image_a")
    image_a.locator("button[aria-label='Capture from camera']").click()
    image_a.get_by_text("Click to Access Webcam").click()
    # Capture only once the fake camera is playing frames (an earlier click grabs a black frame).
    page.wait_for_function("""() => { const v = document.querySelector('#image_a video');
                                      return v && v.readyState >= 2 && v.videoWidth > 0
                                             && v.currentTime > 0.3; }""", timeout=TIMEOUT_MS)
    image_a.locator("button[aria-label='capture photo']").click()
    wait_uploaded(page, "image_a")
    upload(page, "image_b", astronaut_jpg)
    verdict, probability = compare_and_read(page)
    assert verdict in ("same expression", "different expression") and 0 <= probability <= 1
    # The fake camera plays the astronaut photo: a face was found in the webcam frame.
    page.locator("#crop_a img:visible").first.wait_for()
    screenshot(page, "webcam")
