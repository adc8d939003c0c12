"""A plain (non-editable) install carries the shipped model and the examples: slow tier."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow   # builds and installs the package


def test_an_installed_copy_finds_the_shipped_model_and_examples(tmp_path):
    """pip install --target, then from another folder: the model, the examples, the CLI."""
    target = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                            "--quiet", "--target", str(target), str(ROOT)],
                           capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = ("from fecsim import ExpressionComparer, checkpoint\n"
             "from fecsim import shipped_examples\n"
             "comparer = ExpressionComparer.load(device='cpu')\n"
             "print(comparer.path)\n"
             "print(len(shipped_examples.photos()), len(shipped_examples.triplets()))\n")
    env = dict(os.environ, PYTHONPATH=str(target))
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         cwd=elsewhere, env=env)
    assert run.returncode == 0, run.stderr
    path, counts = run.stdout.splitlines()
    assert Path(path).is_relative_to(target) and Path(path).name == "fecsim-v4.safetensors"
    assert all(int(n) > 0 for n in counts.split())
    a, b = sorted((ROOT / "examples" / "photos").glob("happy-*.jpg"))[:2]
    compare = subprocess.run([sys.executable, "-m", "fecsim", "compare", str(a), str(b)],
                             capture_output=True, text=True, cwd=elsewhere, env=env)
    assert compare.returncode == 0, compare.stderr
    assert '"verdict"' in compare.stdout
