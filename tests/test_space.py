"""The Hugging Face Space builds: its README front matter says what a Space needs, and
requirements.txt resolves for the declared Python version from wheels alone (a dry run against
the package index, as the Space's build would resolve it)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = re.compile(r"(NewConnectionError|Max retries exceeded|Temporary failure in name "
                         r"resolution|Network is unreachable|Could not fetch URL|ProxyError|"
                         r"Connection refused|ConnectTimeout|ReadTimeout)", re.I)


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text()
    block = text.split("---\n")[1]
    return {k.strip(): v.strip().strip('"') for k, v in
            (line.split(":", 1) for line in block.splitlines() if ":" in line)}


def requirement_names(path: Path) -> set:
    return {re.split(r"[=<>~ ;#\[]", line.strip())[0].lower()
            for line in path.read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-r"))}


def test_front_matter_declares_python_and_a_short_description():
    meta = front_matter()
    assert re.fullmatch(r"3\.\d+", meta.get("python_version", "")), meta
    assert 0 < len(meta.get("short_description", "")) <= 60   # the Hub's limit
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    pinned = re.search(r"^gradio==(\S+)", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert meta["sdk_version"] == pinned


def test_runtime_requirements_leave_export_tools_to_training():
    runtime = requirement_names(ROOT / "requirements.txt")
    assert not {"onnx", "onnxscript"} & runtime
    assert {"onnx", "onnxscript"} <= requirement_names(ROOT / "requirements-train.txt")
    assert "-r requirements-train.txt" in (ROOT / "requirements-dev.txt").read_text()


@pytest.mark.slow   # starts a process (pip, against the package index)
def test_requirements_resolve_from_wheels_for_the_declared_python(tmp_path):
    version = front_matter()["python_version"]
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
         "--only-binary=:all:", "--python-version", version, "--target", str(tmp_path / "t"),
         "--disable-pip-version-check", "--timeout", "30", "--retries", "1",
         "-r", str(ROOT / "requirements.txt")],
        capture_output=True, text=True, timeout=900)
    output = run.stdout + run.stderr
    if run.returncode != 0 and UNREACHABLE.search(output) and "No matching distribution" \
            not in output:
        pytest.skip(f"the package index is unreachable:\n{output[-1500:]}")
    assert run.returncode == 0, f"requirements.txt does not resolve for Python {version}:\n" \
                                f"{output[-3000:]}"
    assert "Would install" in output and "onnxruntime" in output
