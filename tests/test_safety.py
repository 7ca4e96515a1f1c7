"""Safe loading (issue 14, guarantee 5): no file that may come from elsewhere can run code.

A scan of the package's syntax trees refuses: ``torch.load`` without ``weights_only=True``; PyYAML's
``yaml.load``/``unsafe_load``/``full_load`` (``safe_load`` only) and ruamel's ``YAML(typ="unsafe")``;
``pickle.load``/``loads`` (CIFAR-10 is read by an allow-list ``Unpickler`` subclass); ``np.load`` with
``allow_pickle=True``; ``eval``/``exec``; ``os.system``/``os.popen`` and any call with ``shell=True``.
ruamel's default ``YAML()`` (round-trip, flatlib.profiles and flatlib.schema) is safe: it builds plain
mappings, sequences and scalars and never calls a Python object named by a tag (checked below).
"""
import ast
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from ruamel.yaml import YAML

import flatlib
from flatlib.measure import metrics
from flatlib.training.checkpoints import load_model
from flatlib.errors import CorruptFileError
from tests.test_train import run

PACKAGE = Path(flatlib.__file__).parent
UNSAFE_YAML = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword_is(call: ast.Call, name: str, value) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value == value for k in call.keywords)


def violations(source: str, filename: str = "<snippet>") -> list[str]:
    """Every unsafe call in a module's source, as ``file:line: what``."""
    tree = ast.parse(source, filename)
    pyyaml = any(isinstance(n, ast.Import) and any(a.name == "yaml" for a in n.names) for n in ast.walk(tree))
    found = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = _dotted(call.func)
        problem = None
        if name == "torch.load" and not _keyword_is(call, "weights_only", True):
            problem = "torch.load without weights_only=True"
        elif pyyaml and name.startswith("yaml.") and name.split(".", 1)[1] in UNSAFE_YAML:
            problem = f"{name} (use yaml.safe_load)"
        elif name.endswith("YAML") and _keyword_is(call, "typ", "unsafe"):
            problem = "ruamel YAML(typ='unsafe')"
        elif name in ("pickle.load", "pickle.loads", "cPickle.load", "cPickle.loads"):
            problem = f"{name} (unpickle through an allow-list Unpickler)"
        elif name in ("np.load", "numpy.load") and _keyword_is(call, "allow_pickle", True):
            problem = "np.load with allow_pickle=True"
        elif name in ("eval", "exec", "os.system", "os.popen"):
            problem = f"{name}()"
        elif _keyword_is(call, "shell", True):
            problem = f"{name}(shell=True)"
        if problem:
            found.append(f"{filename}:{call.lineno}: {problem}")
    return found


def test_package_has_no_unsafe_loading():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 15
    found = [v for path in files for v in violations(path.read_text(), str(path.relative_to(PACKAGE.parent)))]
    assert found == []


@pytest.mark.parametrize("snippet, expected", [
    ("import torch\ntorch.load(p)", "torch.load without weights_only=True"),
    ("import torch\ntorch.load(p, weights_only=False)", "torch.load without weights_only=True"),
    ("import yaml\nyaml.load(text, Loader=yaml.Loader)", "yaml.load (use yaml.safe_load)"),
    ("import yaml\nyaml.unsafe_load(text)", "yaml.unsafe_load"),
    ("from ruamel.yaml import YAML\nYAML(typ='unsafe').load(text)", "YAML(typ='unsafe')"),
    ("import pickle\npickle.load(f)", "pickle.load"),
    ("import pickle\npickle.loads(b)", "pickle.loads"),
    ("import numpy as np\nnp.load(p, allow_pickle=True)", "allow_pickle=True"),
    ("eval(expr)", "eval()"),
    ("exec(code)", "exec()"),
    ("import os\nos.system(cmd)", "os.system()"),
    ("import subprocess\nsubprocess.run(cmd, shell=True)", "subprocess.run(shell=True)"),
])
def test_scanner_catches_each_violation(snippet, expected):
    found = violations(snippet)
    assert len(found) == 1 and expected in found[0] and found[0].startswith("<snippet>:")


def test_scanner_accepts_the_safe_forms():
    safe = """
import torch, yaml, subprocess, pickle
import numpy as np
from ruamel.yaml import YAML
torch.load(p, map_location="cpu", weights_only=True)
yaml.safe_load(text)
YAML().load(text)
np.load(p)
subprocess.run(["dvc", "repro"], check=True)
class Restricted(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(name)
Restricted(f).load()
"""
    assert violations(safe) == []
    assert violations("from ruamel.yaml import YAML\nyaml = YAML()\nyaml.load(text)") == []  # ruamel, not PyYAML


def test_ruamel_round_trip_loader_builds_no_python_objects(tmp_path):
    marker = tmp_path / "ran"
    loaded = YAML().load(f"!!python/object/apply:os.mkdir ['{marker}']")
    assert list(loaded) == [str(marker)] and not marker.exists()


class Payload:
    """A pickle that, once unpickled by an unrestricted loader, creates ``marker`` (i.e. runs code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_crafted_files_are_refused_before_they_run(tmp_path):
    marker = tmp_path / "ran"
    crafted = tmp_path / "crafted.pt"
    torch.save(Payload(marker), crafted)
    # Inception weights: the SHA-256 is checked before torch-fidelity unpickles the file
    inception = tmp_path / metrics.INCEPTION_WEIGHTS_FILE
    inception.write_bytes(crafted.read_bytes())
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(CorruptFileError, match="not torch-fidelity's Inception weights"):
        metrics.compute_metrics(images, images, extractor="inception", weights_path=inception, cache_root=tmp_path)
    with pytest.raises(CorruptFileError, match="crafted.pt is not a readable weights-only checkpoint"):
        metrics.load_feature_net(crafted)  # FeatureNet weights
    out = tmp_path / "run"
    run(tmp_path, "adm", out, train__steps=2, train__save_every=2)
    (out / "ema_0.9_000002.pt").write_bytes(crafted.read_bytes())  # a run folder's weights
    with pytest.raises(CorruptFileError, match="ema_0.9_000002.pt"):
        load_model(out)
    # torch-fidelity's own cache entries are loaded weights-only first
    weights = tmp_path / "featurenet.pt"
    metrics.save_feature_net(weights, metrics.FeatureNet())
    common = dict(extractor="featurenet", weights_path=weights, cache_root=tmp_path / "cache",
                  reference_cache_name="ref", kid=False)
    metrics.compute_metrics(images, images + 1, **common)
    entry = next((tmp_path / "cache").glob("ref-*-stat-fid-feat.pt"))
    assert isinstance(torch.load(entry, weights_only=False)["mu"], np.ndarray)  # numpy arrays pass the check
    entry.write_bytes(crafted.read_bytes())
    with pytest.raises(CorruptFileError, match="FID cache entry"):
        metrics.compute_metrics(images, images + 1, **common)
    assert not marker.exists()
