"""The package's own source files that things depend on, found without importing anything.

:data:`TRAINING_CODE` is the code that computes the trained weights: every run folder records its digest
(flatlib.training.train.code_digest) and it is exactly the code deps of dvc.yaml's training stages (train, swa,
rho_train; tests/test_dvc.py). :func:`import_closure` is a module's flatlib import closure, found by parsing
import statements (module level and inside functions): tests/test_dvc.py checks every other stage's code deps
against the closure of the module it runs."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the folder that holds the flatlib package

#: The modules whose code changes the trained weights: the model and diffusion (and where they run), the data
#: pipeline, the optimizers, EMA/SWA, the training loop and its random streams (seeding). Not the command line and
#: run-folder handling (flatlib/training/train.py), checkpoint names and loading (checkpoints.py: the bytes a resume
#: reads are the ones a save wrote), the schema (params.yaml's values are DVC params deps), layout, progress, the report, flatness
#: (its loss set computes the logged eval_mse, never a gradient) or evaluation code. tests/test_digest.py edits each
#: kind of module in a copy of the package and checks which change the digest.
TRAINING_CODE = ("flatlib/seeding.py", "flatlib/model/device.py", "flatlib/model/diffusion.py", "flatlib/model/unet.py",
                 "flatlib/training/averaging.py", "flatlib/training/data.py", "flatlib/training/optimizers.py",
                 "flatlib/training/sam.py", "flatlib/training/trainer.py")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file of a dotted module name under ``root`` (a package's ``__init__.py``), or None."""
    path = root / Path(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def flatlib_imports(file: Path, root: Path = ROOT) -> set[str]:
    """Every flatlib module ``file`` imports (module level or inside functions; absolute imports)."""
    names = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {n for n in names if n.split(".")[0] == "flatlib" and module_file(n, root)}


def import_closure(module: str, root: Path = ROOT) -> set[str]:
    """Root-relative files (``flatlib/x.py``) of ``module`` and every flatlib module it imports, transitively,
    each package's ``__init__`` included, as Python runs it."""
    seen, todo = set(), [module]
    while todo:
        parts = todo.pop().split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in seen and module_file(name, root):
                seen.add(name)
                todo.extend(flatlib_imports(module_file(name, root), root))
    return {module_file(name, root).relative_to(root).as_posix() for name in seen}
