"""The package's shape: the runtime loads nothing from training, and modules stay readable."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = sorted(p for p in (ROOT / "fecsim").rglob("*.py")
                 if "train" not in p.relative_to(ROOT / "fecsim").parts)


def test_the_runtime_imports_nothing_from_training():
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in RUNTIME
               if p.name != "__main__.py"]
    check = ("import importlib, sys\n"
             f"for name in {modules!r}:\n"
             "    importlib.import_module(name)\n"
             "print(sorted(m for m in sys.modules if m.startswith('fecsim.train')))\n")
    run = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
    assert len(modules) > 20   # every runtime module was imported, the web tabs among them


def test_modules_stay_short():
    lines = {p.relative_to(ROOT): len(p.read_text().splitlines())
             for p in (ROOT / "fecsim").rglob("*.py")}
    too_long = {str(p): n for p, n in lines.items()
                if n > (250 if p.parts[1] == "web" else 400)}
    assert not too_long
