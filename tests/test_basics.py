"""What a researcher meets first: the license, the citation metadata (one version everywhere) and the named
Jupyter kernel that ``make setup`` installs."""
import re
import shlex
import tomllib
from pathlib import Path

import yaml

import flatlib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_is_mit_and_declared():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the flatlib developers" in text
    assert PYPROJECT["license"] == "MIT" and "LICENSE" in PYPROJECT["license-files"]


def test_citation_metadata_names_this_software_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert {"cff-version", "message", "title", "authors"} <= set(cff) and cff["cff-version"] == "1.2.0"
    assert cff["version"] == PYPROJECT["version"] == flatlib.__version__
    assert cff["license"] == "MIT" and cff["authors"] == [{"name": "the flatlib developers"}]
    paper = cff["references"][0]
    assert paper["title"] == "Understanding Flatness in Generative Models: Its Role and Benefits"
    assert [a["family-names"] for a in paper["authors"]] == ["Lee", "Seo", "Yoo", "Yoon"]
    assert "arXiv:2503.11078" in [i["value"] for i in paper["identifiers"]]


def test_make_setup_installs_the_named_jupyter_kernel():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    kernel = [shlex.split(line) for line in recipe.splitlines() if "ipykernel install" in line]
    assert len(kernel) == 1, "make setup must install the Jupyter kernel"
    words = kernel[0]
    assert words[:4] == ["$(BIN)/python", "-m", "ipykernel", "install"] and "--user" in words
    assert words[words.index("--name") + 1] == "flatlib"
    assert words[words.index("--display-name") + 1] == "Python (flatlib)"
    assert re.search(r"^ipykernel==[\d.]+$", (ROOT / "requirements.txt").read_text(), re.M)
