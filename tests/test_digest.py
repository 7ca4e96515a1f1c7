"""The training code digest (flatlib.training.train.code_digest) covers exactly the code that computes the trained
weights: an edit of the model, diffusion, data, optimizers, averaging, the training loop or the seeding changes it
(a run folder of the old code is retrained); an edit of the command line, run-folder handling, layout, progress, schema,
the report, flatness or any evaluation or stage code does not."""
import shutil

import pytest

from flatlib.sources import ROOT, TRAINING_CODE
from flatlib.training.train import code_digest

CHANGES_THE_WEIGHTS = ["flatlib/model/unet.py", "flatlib/model/diffusion.py", "flatlib/model/device.py",
                       "flatlib/training/data.py", "flatlib/training/optimizers.py", "flatlib/training/sam.py",
                       "flatlib/training/averaging.py", "flatlib/training/trainer.py", "flatlib/seeding.py"]
LEAVES_THE_WEIGHTS = ["flatlib/cli.py", "flatlib/layout.py", "flatlib/progress.py", "flatlib/schema.py",
                      "flatlib/vocabulary.py", "flatlib/training/train.py", "flatlib/training/checkpoints.py",
                      "flatlib/model/loss_set.py", "flatlib/measure/flatness.py", "flatlib/measure/sample.py",
                      "flatlib/measure/metrics.py", "flatlib/stages/pipeline.py", "flatlib/stages/runs.py",
                      "flatlib/measure/records.py", "flatlib/report/claims.py", "flatlib/report/figures.py",
                      "flatlib/gd/importer.py"]


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    root = tmp_path_factory.mktemp("copy")
    shutil.copytree(ROOT / "flatlib", root / "flatlib", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def digest_after_editing(root, file: str) -> str:
    """The digest of the copy at ``root`` with one line appended to ``file`` (then restored)."""
    path = root / file
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# an edit\n")
        return code_digest(root)["sha256"]
    finally:
        path.write_bytes(original)


def test_the_lists_cover_the_package():
    assert sorted(CHANGES_THE_WEIGHTS) == sorted(TRAINING_CODE)
    assert not set(LEAVES_THE_WEIGHTS) & set(TRAINING_CODE)


@pytest.mark.parametrize("file", CHANGES_THE_WEIGHTS)
def test_an_edit_of_the_training_code_changes_the_digest(package, file):
    assert digest_after_editing(package, file) != code_digest(package)["sha256"]


@pytest.mark.parametrize("file", LEAVES_THE_WEIGHTS)
def test_an_edit_elsewhere_leaves_the_digest(package, file):
    assert digest_after_editing(package, file) == code_digest(package)["sha256"]


def test_the_copy_digests_as_the_repository(package):
    assert code_digest(package) == code_digest()
