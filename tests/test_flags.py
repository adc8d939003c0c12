"""Flag storage: complete or absent after a kill, no interleaving when concurrent, and the loop
closed: flag -> export-flags -> a training step reads the pairs."""
import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fecsim import ExpressionComparer
from fecsim.train.data import PairsCSV, train_transform
from fecsim.cli import main as cli_main
from fecsim.flags import TMP_MAX_AGE, PairFlagLogger, export_flags, read_flags
from fecsim.model import ModelConfig, SiameseResNet18
from fecsim.train.loop import batch_loss

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def flagged_result(random_checkpoint, astronaut_jpg, tmp_path_factory):
    """What the app flags: originals, the crops the model saw, and the result."""
    comparer = ExpressionComparer.load(random_checkpoint, device="cpu")
    close = tmp_path_factory.mktemp("photos") / "close.png"
    Image.open(astronaut_jpg).crop((96, 0, 352, 256)).save(close)
    r = comparer.compare(astronaut_jpg, close)
    result = dict(r.to_dict(), checkpoint_sha256=comparer.sha256, checkpoint="random.safetensors")
    return [str(astronaut_jpg), str(close), r.faces[0].crop, r.faces[1].crop, result]


def logger_for(folder) -> PairFlagLogger:
    return PairFlagLogger(folder)


def test_a_flag_stores_everything(flagged_result, tmp_path):
    count = logger_for(tmp_path).flag(flagged_result, flag_option="same expression")
    assert count == 1
    (flag,) = read_flags(tmp_path)
    result = flagged_result[4]
    assert flag["same"] == 1 and flag["user_answer"] == "same expression"
    assert flag["model_probability"] == result["probability"]
    assert flag["model_verdict"] == result["verdict"]
    assert flag["box_a"] == result["box_a"] and flag["box_b"] == result["box_b"]
    assert flag["checkpoint_sha256"] == result["checkpoint_sha256"]
    assert flag["timestamp"]
    folder = flag["dir"]
    assert (folder / flag["files"]["original_a"]).read_bytes() == Path(flagged_result[0]).read_bytes()
    assert (folder / flag["files"]["original_b"]).read_bytes() == Path(flagged_result[1]).read_bytes()
    crop = Image.open(folder / flag["files"]["crop_a"])
    assert np.array_equal(np.asarray(crop), np.asarray(flagged_result[2]))


def test_a_wrong_answer_value_is_refused(flagged_result, tmp_path):
    with pytest.raises(ValueError, match="right answer"):
        logger_for(tmp_path).flag(flagged_result, flag_option="maybe")
    assert read_flags(tmp_path) == [] and list(tmp_path.iterdir()) == []


def test_a_failure_mid_flag_leaves_nothing_and_keeps_earlier_flags(flagged_result, tmp_path,
                                                                   monkeypatch):
    logger = logger_for(tmp_path)
    logger.flag(flagged_result, flag_option="same expression")

    def broken_rename(*_):
        raise OSError("disk gone")
    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(OSError, match="disk gone"):
        logger.flag(flagged_result, flag_option="different expression")
    monkeypatch.undo()
    assert [f["user_answer"] for f in read_flags(tmp_path)] == ["same expression"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


KILLED_FLAGGER = """
import sys
from PIL import Image
from fecsim.flags import TMP_MAX_AGE, PairFlagLogger
logger = PairFlagLogger(sys.argv[1])
crop = Image.new("RGB", (48, 48), (90, 90, 90))
result = {"probability": 0.25, "verdict": "different expression", "box_a": [1, 2, 3, 4],
          "box_b": [5, 6, 7, 8], "checkpoint_sha256": "0" * 64}
print("ready", flush=True)
while True:
    logger.flag([sys.argv[2], sys.argv[2], crop, crop, result], flag_option="same expression")
"""


@pytest.mark.slow
def test_kill_during_flagging_never_leaves_a_half_written_flag(astronaut_jpg, tmp_path):
    """SIGKILL a process that flags in a loop, at several moments: every flag on disk is whole."""
    folder = tmp_path / "flagged"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    seen = 0
    for delay in (0.3, 0.7):
        proc = subprocess.Popen([sys.executable, "-c", KILLED_FLAGGER, str(folder),
                                 str(astronaut_jpg)], env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        flags = read_flags(folder)
        assert len(flags) >= seen     # earlier flags are never lost
        seen = len(flags)
        for flag in flags:            # and every flag is complete
            for name in flag["files"].values():
                Image.open(flag["dir"] / name).load()
    assert seen > 0
    # Unfinished temporaries are ignored by export.
    out = tmp_path / "pairs.csv"
    assert export_flags(folder, out) == seen
    assert len(PairsCSV(out, transform=lambda x: x)) == seen


def test_concurrent_flags_do_not_interleave(flagged_result, tmp_path):
    logger = logger_for(tmp_path)
    answers = ["same expression", "different expression"]
    errors = []

    def flag_five(i):
        try:
            for _ in range(5):
                logger.flag(flagged_result, flag_option=answers[i % 2])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=flag_five, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    flags = read_flags(tmp_path)
    assert len(flags) == 40 and len({f["flag_id"] for f in flags}) == 40
    assert sum(f["same"] for f in flags) == 20


def test_flag_export_then_a_training_step_reads_them(flagged_result, tmp_path, monkeypatch):
    flag_dir = tmp_path / "flagged"
    logger = logger_for(flag_dir)
    logger.flag(flagged_result, flag_option="same expression")
    logger.flag(flagged_result, flag_option="different expression")
    out = tmp_path / "elsewhere" / "pairs.csv"
    # The CLI, as `python -m fecsim export-flags flagged/ --out pairs.csv` calls it.
    assert cli_main(["export-flags", str(flag_dir), "--out", str(out)]) == 0
    pairs = PairsCSV(out, train_transform(48))
    assert [row[2] for row in pairs.rows] == [1, 0]
    assert all(row[0].is_file() and row[1].is_file() for row in pairs.rows)

    # One optimiser step on the exported pairs, exactly as train.py --extra_pairs feeds them.
    torch.manual_seed(0)
    model = SiameseResNet18(ModelConfig(num_classes=0)).train()
    a, b, same = next(iter(torch.utils.data.DataLoader(pairs, batch_size=2)))
    assert a.shape == (2, 3, 48, 48) and same.tolist() == [1.0, 0.0]
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss, parts = batch_loss(model, {"a": a, "b": b, "same": same})
    loss.backward()
    opt.step()
    assert "extra_pairs" in parts and torch.isfinite(loss)
    assert any(not torch.equal(p, q) for p, q in zip(before, model.parameters()))


@pytest.mark.slow   # starts a process
def test_module_command_line(flagged_result, tmp_path, capsys):
    flag_dir = tmp_path / "flagged"
    logger_for(flag_dir).flag(flagged_result, flag_option="different expression")
    out = tmp_path / "pairs.csv"
    run = subprocess.run([sys.executable, "-m", "fecsim", "export-flags", str(flag_dir), "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "wrote 1 pairs" in run.stdout
    header = out.read_text().splitlines()[0].split(",")
    assert header[:3] == ["a", "b", "same"] and "checkpoint_sha256" in header
    assert cli_main(["export-flags", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


# --- Reliability (README): a corrupt record, what an original is stored as, old temporaries. ---

def test_a_corrupt_record_is_skipped_and_flagging_and_export_go_on(flagged_result, tmp_path, caplog):
    flag_dir = tmp_path / "flagged"
    logger = logger_for(flag_dir)
    logger.flag(flagged_result, flag_option="same expression")
    (broken,) = read_flags(flag_dir)
    record = broken["dir"] / "flag.json"
    record.write_text(record.read_text()[:40])             # truncated, as by a full disk
    assert logger.flag(flagged_result, flag_option="different expression") == 1   # no error
    assert len(list(flag_dir.glob("*/flag.json"))) == 2     # stored once: nothing to retry
    assert str(record) in caplog.text and "skipped" in caplog.text
    out = tmp_path / "pairs.csv"
    assert cli_main(["export-flags", str(flag_dir), "--out", str(out)]) == 0
    assert [row["same"] for row in csv.DictReader(open(out))] == ["0"]


def test_an_original_is_stored_under_its_detected_format(flagged_result, tmp_path):
    disguised = tmp_path / "upload.php"                    # a PNG, whatever its name says
    disguised.write_bytes(Path(flagged_result[1]).read_bytes())
    logger = logger_for(tmp_path / "flagged")
    logger.flag([flagged_result[0], str(disguised), *flagged_result[2:]], flag_option="same expression")
    (flag,) = read_flags(tmp_path / "flagged")
    assert flag["files"]["original_a"] == "original_a.jpg"
    assert flag["files"]["original_b"] == "original_b.png"
    assert sorted(p.name for p in flag["dir"].iterdir()) == [
        "crop_a.png", "crop_b.png", "flag.json", "original_a.jpg", "original_b.png"]


def test_old_unfinished_flags_are_removed(flagged_result, tmp_path):
    flag_dir = tmp_path / "flagged"
    old, recent = flag_dir / ".tmp-old", flag_dir / ".tmp-recent"
    for folder in (old, recent):
        folder.mkdir(parents=True)
        (folder / "original_a.jpg").write_bytes(b"a user's photo")
    hours_ago = time.time() - TMP_MAX_AGE - 60
    os.utime(old, (hours_ago, hours_ago))
    logger_for(flag_dir).flag(flagged_result, flag_option="same expression")
    assert not old.exists() and recent.exists()   # a recent one may be a flag being written
