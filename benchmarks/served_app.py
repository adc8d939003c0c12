"""`python app.py` started as users start it, for the safety probe and the memory benchmark: a
free port of 127.0.0.1, its own TMPDIR (so that every file it leaves can be found), a flags
token set, and its peak memory (VmHWM) read from /proc and reset between measurements."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "probe-token-7f3a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedApp:
    def __init__(self, work: Path, checkpoint=None):
        self.work, self.port = Path(work), free_port()
        self.tmp = self.work / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.flag_dir = self.work / "flagged"
        env = dict(os.environ, TMPDIR=str(self.tmp), FECSIM_FLAGS_TOKEN=TOKEN,
                   GRADIO_ANALYTICS_ENABLED="False", HF_HUB_DISABLE_TELEMETRY="1",
                   PYTHONPATH=str(ROOT))
        env.pop("GRADIO_TEMP_DIR", None)   # gradio's cache: <TMPDIR>/gradio
        command = [sys.executable, str(ROOT / "app.py"), "--port", str(self.port),
                   "--flag-dir", str(self.flag_dir)]
        if checkpoint:
            command += ["--checkpoint", str(checkpoint)]
        self.log = open(self.work / "app.log", "w")
        self.proc = subprocess.Popen(command, cwd=self.work, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/"
        deadline = time.time() + 300
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.close()
                    log = (self.work / 'app.log').read_text()
                    raise RuntimeError(f"the app did not start: {log}") from None
                time.sleep(0.5)

    @property
    def gradio_cache(self) -> Path:
        return self.tmp / "gradio"

    def status(self, field: str) -> float:
        """A /proc/<pid>/status figure in MB (VmHWM: the peak resident memory, VmRSS: now)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise KeyError(field)

    def reset_peak(self) -> None:
        """VmHWM back to the current resident size (Linux: 5 > clear_refs)."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def big_jpeg(path: Path, megapixels: float, variant: int = 0, quality: int = 85) -> Path:
    """The astronaut (public domain, scikit-image) upscaled to `megapixels` at 3:2, a little
    different per variant so that gradio's cache keeps each file."""
    from PIL import Image
    from skimage import data
    width = round((megapixels * 1e6 * 1.5) ** 0.5)
    height = round(width / 1.5)
    canvas = Image.new("RGB", (width, height), (200 + variant, 210, 220))
    face = Image.fromarray(data.astronaut()).resize((height, height), Image.BILINEAR)
    canvas.paste(face, ((width - height) // 2, 0))
    canvas.save(path, quality=quality)
    return path
