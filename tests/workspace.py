"""A fresh copy of the repository to run the DVC pipeline in (tests/test_pipeline.py, tests/test_import_pipeline.py),
and commands run there with this interpreter's tools (dvc, papermill) first on PATH."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from flatlib import layout

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: the committed results of the default run, which a fresh workspace must not start from
DEFAULT_RUN = (f"{layout.METRICS}/", f"{layout.RESULTS}/", f"{layout.DOCS}/", "dvc.lock")


def run(cmd, cwd):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(cwd)}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def copy_repository(dest: Path) -> Path:
    """``dest`` (emptied first): the tracked and untracked, not ignored files of the repository, as a git repo."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    shutil.rmtree(dest, ignore_errors=True)
    for name in filter(None, files):
        if (ROOT / name).is_file() and not name.startswith(DEFAULT_RUN):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    run(["git", "init", "-q"], dest)
    return dest
