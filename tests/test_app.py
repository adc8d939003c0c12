"""The web app through its API: gradio_client against the app served on 127.0.0.1.

The answers are checked against ExpressionComparer called directly on the same files, so a test
fails if the page reports anything other than what the model says.
"""
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from conftest import free_port, two_faces
from fecsim import ExpressionComparer
from fecsim.web import build_demo
from fecsim.web.results import RESULT_MAX_AGE, ResultStore
from fecsim.flags import export_flags, read_flags

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def comparer(random_checkpoint):
    return ExpressionComparer.load(random_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def client(served):
    return Client(served[0], verbose=False, analytics_enabled=False)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut):
    folder = tmp_path_factory.mktemp("photos")
    image = Image.fromarray(astronaut)
    paths = {"astronaut": folder / "astronaut.jpg", "mirror": folder / "mirror.png",
             "close": folder / "close.jpg", "two": folder / "two.png"}
    image.save(paths["astronaut"], quality=92)
    image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(paths["mirror"])
    image.crop((96, 0, 352, 256)).save(paths["close"], quality=92)
    Image.fromarray(two_faces(astronaut)).save(paths["two"])
    return paths


COMPARE_OUTPUTS = ("boxed_a", "boxed_b", "crop_a", "crop_b", "expressions_a", "expressions_b",
                   "details")


def compare(client, a, b, **choices) -> dict:
    """/compare as the API page shows it: two photos, and the optional choices by name."""
    out = client.predict(handle_file(str(a)), handle_file(str(b)), **choices, api_name="/compare")
    assert len(out) == len(COMPARE_OUTPUTS)
    out = dict(zip(COMPARE_OUTPUTS, out))
    out.update(verdict=out["details"]["verdict"], probability=out["details"]["probability"],
               seconds=out["details"]["seconds"])
    return out


def test_compare_matches_the_model(client, comparer, photos):
    # Two photos are enough: boxes and face numbers have defaults (as the API page shows).
    out = compare(client, photos["astronaut"], photos["mirror"])
    verdict, p, seconds, details = (out[k] for k in ("verdict", "probability", "seconds",
                                                     "details"))
    expected = comparer.compare(photos["astronaut"], photos["mirror"])
    assert p == pytest.approx(expected.probability, abs=1e-3)
    assert verdict == expected.verdict
    assert verdict == ("same expression" if p >= expected.threshold else "different expression")
    assert details["box_a"] == pytest.approx(list(expected.faces[0].box))
    assert details["box_b"] == pytest.approx(list(expected.faces[1].box))
    assert details["checkpoint_sha256"] == comparer.sha256
    assert 0 < seconds < 60
    # The crops are what the model saw; the boxed photos are the originals' size.
    assert Image.open(out["crop_a"]).size == expected.faces[0].crop.size
    assert Image.open(out["boxed_a"]).size == Image.open(photos["astronaut"]).size
    assert Image.open(out["boxed_b"]).size == Image.open(photos["mirror"]).size
    # Each face's expression distribution: in the details, and its top 3 as a label.
    for key in "ab":
        distribution = details[f"expressions_{key}"]
        assert list(distribution) == list(expected.expressions["ab".index(key)])
        assert sorted(distribution) == sorted(comparer.model.config.class_names)
        top = out[f"expressions_{key}"]
        assert top["label"] == next(iter(distribution))
        assert [c["label"] for c in top["confidences"]] == list(distribution)[:3]


def test_the_named_endpoints_and_their_defaults(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/compare", "/odd_one_out", "/rank", "/flag"} <= set(api)
    required = [p["parameter_name"] for p in api["/compare"]["parameters"]
                if not p["parameter_has_default"]]
    assert required == ["image_a", "image_b"]


def test_odd_one_out_matches_the_model(client, comparer, photos, tmp_path):
    other = tmp_path / "cameraman.jpg"
    from skimage import data
    Image.fromarray(data.camera()).save(other)
    *crops, sentence, pairs, details = client.predict(
        handle_file(str(photos["astronaut"])), handle_file(str(photos["close"])),
        handle_file(str(other)), api_name="/odd_one_out")
    expected = comparer.odd_one_out(photos["astronaut"], photos["close"], other)
    assert details["odd"] == expected.odd
    assert sentence == f"Image {expected.odd} is the odd one out"
    pairs = {c["label"]: c["confidence"] for c in pairs["confidences"]}
    for key, p in expected.probabilities.items():
        assert pairs[f"Images {key[0]} and {key[1]}"] == pytest.approx(p, abs=1e-3)
    assert len(crops) == 3 and all(Image.open(c).size == (48, 48) for c in crops)


def test_rank_orders_photos_and_lists_the_faceless_last(client, comparer, photos, no_face_jpg):
    candidates = [photos["close"], no_face_jpg, photos["two"], photos["mirror"]]
    gallery, ranking = client.predict(handle_file(str(photos["astronaut"])),
                                      [handle_file(str(p)) for p in candidates],
                                      api_name="/rank")
    expected = comparer.rank(photos["astronaut"], candidates)
    assert [r["name"] for r in ranking] == [Path(r.source).stem for r in expected]
    assert [r["probability"] for r in ranking[:3]] == pytest.approx(
        [r.probability for r in expected[:3]], abs=1e-3)
    assert ranking[-1]["name"] == no_face_jpg.stem and "no face" in ranking[-1]["error"]
    assert ranking[-1]["rank"] is None and str(no_face_jpg.parent) not in ranking[-1]["error"]
    assert len(gallery) == 3 and gallery[0]["caption"].startswith("1. ")


def test_pick_the_second_face_or_a_box(client, comparer, photos):
    found = comparer.face(photos["two"]).found
    assert len(found) == 2
    details = compare(client, photos["two"], photos["astronaut"], face_a=2)["details"]
    assert details["faces_found_a"] == [list(b) for b in found]
    assert details["box_a"] == pytest.approx(list(found[1]))
    box = "10, 20, 200, 220"
    out = compare(client, photos["astronaut"], photos["astronaut"], box_b=box)
    p, details = out["probability"], out["details"]
    assert details["box_b"] == [10, 20, 200, 220]
    expected = comparer.compare(photos["astronaut"], photos["astronaut"], box_b=(10, 20, 200, 220))
    assert p == pytest.approx(expected.probability, abs=1e-3)


def test_bad_inputs_are_reported_and_the_app_keeps_serving(client, photos, not_an_image,
                                                           no_face_jpg, tmp_path):
    with pytest.raises(AppError, match=r"Image A: .*not an image"):
        compare(client, not_an_image, photos["astronaut"])
    with pytest.raises(AppError, match=r"Image B: .*no face"):
        compare(client, photos["astronaut"], no_face_jpg)
    with pytest.raises(AppError, match=r"Image 3: .*no face"):
        client.predict(*(handle_file(str(p)) for p in (photos["astronaut"], photos["close"],
                                                       no_face_jpg)), api_name="/odd_one_out")
    with pytest.raises(AppError, match=r"Image B: a box is four numbers"):
        compare(client, photos["astronaut"], photos["astronaut"], box_b="1, 2, three")
    with pytest.raises(AppError, match=r"Image A: face 3 was asked for but 1 face was found"):
        compare(client, photos["astronaut"], photos["astronaut"], face_a=3)
    with pytest.raises(AppError, match=r"Image B: no photo given"):
        client.predict(handle_file(str(photos["astronaut"])), None, api_name="/compare")
    # Too large: 132 megapixels (a small file: one grey colour) is refused before decoding.
    huge = tmp_path / "huge.png"
    Image.new("L", (12000, 11000), 128).save(huge, compress_level=1)
    with pytest.raises(AppError, match=r"Image A: .*(over the limit|decompression bomb)"):
        compare(client, huge, photos["astronaut"])
    # Still serving, with correct answers.
    assert compare(client, photos["astronaut"], photos["mirror"])["verdict"] in (
        "same expression", "different expression")


@pytest.mark.parametrize("face", ["inf", "1e400", 0, -5, 1.7, 10 ** 400],
                         ids=["inf", "1e400", "0", "-5", "1.7", "400 digits"])
def test_a_face_number_must_be_a_whole_number_from_one(client, photos, face):
    with pytest.raises(AppError, match=r"Image A: the face number must be a whole number >= 1"):
        compare(client, photos["astronaut"], photos["two"], face_a=face)


def test_a_box_mostly_outside_the_photo_is_refused(client, photos):
    with pytest.raises(AppError, match=r"Image B: .*mostly outside the 512x512 image"):
        compare(client, photos["astronaut"], photos["mirror"], box_b="0, 0, 5000, 5000")


def test_result_images_and_gradio_cache_are_cleaned(comparer, tmp_path):
    results = ResultStore(tmp_path, cache=tmp_path / "cache")
    old = tmp_path / "old.png"
    old.write_bytes(b"yesterday's result")
    os.utime(old, (time.time() - RESULT_MAX_AGE - 60,) * 2)
    kept = results.saved(Image.new("RGB", (8, 8)))
    assert not old.exists() and Path(kept).exists()
    demo = build_demo(comparer=comparer)
    assert demo.delete_cache == (RESULT_MAX_AGE // 6, RESULT_MAX_AGE)


def test_a_server_file_is_never_read_through_the_api(client, photos, tmp_path):
    """Issue 18: a dict without gradio's meta skipped gradio's upload check, and the app opened
    any path; a missing path was told apart from an existing one by its message."""
    server_file = tmp_path / "nobody-uploaded.jpg"
    server_file.write_bytes(photos["astronaut"].read_bytes())
    messages = set()
    for path in (server_file, tmp_path / "missing.jpg"):
        for api_name, others in (("/compare", 1), ("/odd_one_out", 2)):
            with pytest.raises(AppError) as refused:
                client.predict({"path": str(path)}, *[handle_file(str(photos["astronaut"]))] * others,
                               api_name=api_name)
            messages.add(str(refused.value).replace("Image 1", "Image A"))
        with pytest.raises(AppError) as refused:
            client.predict({"path": str(path)}, [handle_file(str(photos["astronaut"]))],
                           api_name="/rank")
        messages.add(str(refused.value).replace("The reference", "Image A"))
    assert messages == {"Image A: not a photo uploaded to this app: upload it (from a script, "
                        "gradio_client's handle_file)"}


def test_flag_stores_the_result_and_exports_it(served, comparer, photos, tmp_path):
    url, flag_dir = served
    own = Client(url, verbose=False, analytics_enabled=False)   # a session of its own
    with pytest.raises(AppError, match="Compare two photos first"):
        own.predict("same expression", True, api_name="/flag")
    before = len(read_flags(flag_dir))
    out = compare(own, photos["astronaut"], photos["close"])
    p, details = out["probability"], out["details"]
    with pytest.raises(AppError, match="Choose the right answer"):
        own.predict(None, True, api_name="/flag")
    # Without consent nothing is stored.
    with pytest.raises(AppError, match="Nothing was stored"):
        own.predict("different expression", False, api_name="/flag")
    assert len(read_flags(flag_dir)) == before
    status = own.predict("different expression", True, api_name="/flag")
    assert "Flagged" in status and "different expression" in status
    with pytest.raises(AppError, match="already flagged"):
        own.predict("same expression", True, api_name="/flag")
    flags = read_flags(flag_dir)
    assert len(flags) == before + 1
    flag = flags[-1]
    assert flag["user_answer"] == "different expression" and flag["same"] == 0
    assert flag["model_probability"] == pytest.approx(p, abs=1e-3)
    assert flag["model_verdict"] == details["verdict"]
    assert flag["box_a"] == details["box_a"] and flag["box_b"] == details["box_b"]
    assert flag["checkpoint_sha256"] == comparer.sha256
    folder = flag["dir"]
    for key, photo in (("original_a", photos["astronaut"]), ("original_b", photos["close"])):
        stored = Image.open(folder / flag["files"][key])   # re-encoded without metadata
        assert stored.size == Image.open(photo).size and not stored.getexif()
    assert flag["consent"]["given"] is True and "Thank you." in status
    assert Image.open(folder / flag["files"]["crop_a"]).size == (48, 48)
    out = tmp_path / "pairs.csv"
    assert export_flags(flag_dir, out) == (len(flags), 0)
    assert "different expression" in out.read_text()


def test_flags_download_needs_the_token(client, served, monkeypatch, tmp_path):
    monkeypatch.delenv("FECSIM_FLAGS_TOKEN", raising=False)
    with pytest.raises(AppError, match="switched off"):
        client.predict("anything", api_name="/download_flags")
    monkeypatch.setenv("FECSIM_FLAGS_TOKEN", "s3cret-token")
    with pytest.raises(AppError, match="Wrong token"):
        client.predict("guess", api_name="/download_flags")
    with pytest.raises(AppError, match="Too many wrong tokens"):   # guessing is slowed down
        client.predict("s3cret-token", api_name="/download_flags")
    time.sleep(1.1)
    archive = client.predict("s3cret-token", api_name="/download_flags")
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path)
    # The zip holds the folders export-flags reads, complete.
    assert [f["flag_id"] for f in read_flags(tmp_path / "flagged")] == [
        f["flag_id"] for f in read_flags(served[1])]


def test_flags_go_to_persistent_storage_when_a_space_has_it(monkeypatch, tmp_path):
    from fecsim import flags
    monkeypatch.setattr(flags, "PERSISTENT_STORAGE", tmp_path / "data")
    assert flags.default_flag_dir() == Path("flagged")          # no /data: wiped on restart
    (tmp_path / "data").mkdir()
    assert flags.default_flag_dir() == tmp_path / "data" / "flagged"


def test_queued_requests_from_several_clients_all_correct(served, comparer, photos):
    """The queue: 3 clients x 2 requests at once, every answer the model's own. Waits follow the
    measured time of one request, so a slow, busy machine is given the time it needs; the 10 x 5
    load run with its figures is benchmarks/bench_app.py."""
    expected = comparer.compare(photos["astronaut"], photos["mirror"]).probability
    started = time.monotonic()
    compare(Client(served[0], verbose=False, analytics_enabled=False), photos["astronaut"],
            photos["mirror"])
    clients, each = 3, 2
    budget = 60 + 10 * clients * each * (time.monotonic() - started)   # seconds, generous
    results, errors = [], []

    def one_client():
        try:
            c = Client(served[0], verbose=False, analytics_enabled=False,
                       httpx_kwargs={"timeout": budget})
            jobs = [c.submit(handle_file(str(photos["astronaut"])),
                             handle_file(str(photos["mirror"])), api_name="/compare")
                    for _ in range(each)]
            results.extend(job.result(timeout=budget)[-1]["probability"] for job in jobs)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one_client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=2 * budget)
    assert not errors, errors
    assert len(results) == clients * each
    assert all(p == pytest.approx(expected, abs=1e-3) for p in results)


SITECUSTOMIZE = textwrap.dedent("""
    # Records every name lookup or connection this process attempts to a host not on this machine.
    import os, sys
    _LOG = os.environ["FECSIM_NET_LOG"]
    _LOCAL = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "", None}
    def _hook(event, args):
        host = None
        if event == "socket.getaddrinfo":
            host = args[0]
        elif event == "socket.connect" and isinstance(args[1], tuple):
            host = args[1][0]
        if isinstance(host, bytes):
            host = host.decode()
        if event in ("socket.getaddrinfo", "socket.connect") and host not in _LOCAL:
            with open(_LOG, "a") as f:
                f.write(f"{event} {host}\\n")
    sys.addaudithook(_hook)
""")


def test_app_py_makes_no_request_off_this_machine(random_checkpoint, photos, tmp_path):
    """`python app.py` as users start it, watched by an audit hook on every socket lookup."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "net.log"
    port = free_port()
    env = dict(os.environ, PYTHONPATH=f"{tmp_path / 'site'}{os.pathsep}{ROOT}",
               FECSIM_NET_LOG=str(log), GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_DISABLE_TELEMETRY="1")
    env.pop("HF_HUB_OFFLINE", None)   # the app must be quiet without it too
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--checkpoint",
         str(random_checkpoint), "--flag-dir", str(tmp_path / "flagged")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"app did not start:\n{proc.stdout.read()}") from None
                time.sleep(0.5)
        c = Client(url, verbose=False, analytics_enabled=False)
        p = compare(c, photos["astronaut"], photos["mirror"])["probability"]
        assert 0.0 <= p <= 1.0
        c.predict("same expression", True, api_name="/flag")
        assert len(read_flags(tmp_path / "flagged")) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    attempts = log.read_text() if log.exists() else ""
    assert attempts == "", f"the app tried to reach other machines:\n{attempts}"


def test_the_pages_api_snippet_runs_as_shown(served, capsys):
    """What *Use it from a program (API)* shows, with this server's address filled in as the
    browser fills it: it downloads two example photos from the app and gets a verdict."""
    from fecsim.web import api_help
    exec(compile(api_help.snippet().replace(api_help.PAGE, served[0]), "snippet", "exec"), {})
    verdict, ranking = capsys.readouterr().out.strip().splitlines()[-2:]
    assert verdict.split()[0] in ("same", "different") and "'rank': 1" in ranking


def test_the_browser_keeps_no_run_history(served):
    """Gradio's run history would keep every run's photos in the visitor's browser and offer to
    upload them elsewhere; the page promises nothing is kept."""
    import json
    from urllib.request import urlopen
    url, _ = served
    with urlopen(url + "config", timeout=30) as response:
        config = json.load(response)
    assert config["run_history"] is False
