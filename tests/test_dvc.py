"""dvc.yaml against the code and the layout: every stage's code deps are exactly the import closure of the
module it runs, and every path a stage writes is the one flatlib.layout spells."""
import re
from pathlib import Path

import pytest
import yaml

from flatlib import layout
from flatlib.params import load_params
from flatlib.sources import import_closure

ROOT = Path(__file__).resolve().parent.parent


def expand_stages(dvc: dict, params) -> dict[str, dict]:
    """``name@key`` -> stage definition with ``${key}``/``${item}`` substituted (foreach over a list or
    ``${variants}``), other ``${...}`` left as they are."""
    stages = {}
    for name, stage in dvc["stages"].items():
        if "foreach" not in stage:
            stages[name] = stage
            continue
        keys = list(params.variants) if stage["foreach"] == "${variants}" else stage["foreach"]
        for key in keys:
            text = yaml.safe_dump(stage["do"]).replace("${key}", key).replace("${item}", key)
            stages[f"{name}@{key}"] = yaml.safe_load(text)
    return stages


def paths(entries) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def module_of(cmd: str) -> str:
    """The flatlib module a stage command runs (papermill notebooks import flatlib.report)."""
    if cmd.lstrip().startswith("mkdir -p reports && papermill"):
        return "flatlib.report"
    found = re.search(r"-m (flatlib(?:\.\w+)*)", cmd)
    assert found, f"cannot tell which flatlib module runs in {cmd!r}"
    return found.group(1)


def code_deps(deps: list[str], root: Path = ROOT) -> set[str]:
    """The flatlib files a stage lists (a listed package folder stands for its .py files)."""
    out = set()
    for dep in deps:
        if dep.split("/")[0] != "flatlib":
            continue
        path = root / dep
        out |= ({p.relative_to(root).as_posix() for p in path.rglob("*.py")} if path.is_dir() else {dep})
    return out


@pytest.fixture(scope="module")
def stages():
    return expand_stages(yaml.safe_load((ROOT / "dvc.yaml").read_text()), load_params(ROOT / "params.yaml"))


def missing_and_extra(stage: dict, root: Path = ROOT) -> tuple[set, set]:
    wanted, listed = import_closure(module_of(stage["cmd"]), root), code_deps(stage.get("deps"), root)
    return wanted - listed, listed - wanted


def test_every_stage_lists_exactly_the_code_it_imports(stages):
    problems = {name: dict(zip(("missing", "never imported"), missing_and_extra(stage)))
                for name, stage in stages.items()}
    problems = {name: p for name, p in problems.items() if p["missing"] or p["never imported"]}
    assert not problems, f"dvc.yaml code deps differ from the import closures: {problems}"


def test_the_dependency_check_catches_a_deleted_dependency(stages):
    stage = dict(stages["rho_sweep"])
    stage["deps"] = [d for d in stage["deps"] if d != "flatlib/flatness.py"]
    assert missing_and_extra(stage) == ({"flatlib/flatness.py"}, set())


def test_stage_outputs_follow_the_layout(stages):
    variants = list(load_params(ROOT / "params.yaml").variants)
    expected = {"preflight": [layout.PREFLIGHT], "reference": [layout.REFERENCE], "featurenet": [layout.FEATURENET, layout.FEATURENET_METRICS],
                "rho_train": [layout.RHO_RUNS], "rho_sweep": [layout.RHO_SWEEP_METRICS]}
    for v in variants:
        expected.update({f"train@{v}": [layout.run_dir(v)], f"swa@{v}": [layout.run_dir(v, "swa")],
                         f"sample@{v}": [layout.samples_dir(v)], f"fid@{v}": [layout.variant_metrics("fid", v)],
                         f"quant@{v}": [layout.quant_dir(v), layout.variant_metrics("quant", v)],
                         f"flatness@{v}": [layout.variant_metrics("flatness", v)],
                         f"exposure@{v}": [layout.variant_metrics("exposure", v)]})
    expected.update({f"notebooks@{n}": [layout.report_notebook(n)] for n in layout.NOTEBOOK_NAMES})
    written = {name: sorted(paths(s.get("outs")) + paths(s.get("metrics"))) for name, s in stages.items()}
    assert written == {name: sorted(p.as_posix() for p in ps) for name, ps in expected.items()}
    for name, outs in written.items():  # and the layout names the stage of each artifact it writes
        assert all(layout.stage_of(p) == name for p in outs if not p.startswith("reports/")), name


def test_every_artifact_a_stage_reads_is_written_by_a_stage(stages):
    written = {p for s in stages.values() for p in paths(s.get("outs")) + paths(s.get("metrics"))}
    inputs = {"params.yaml", "metrics", "samples", "runs"}  # the notebooks read whole trees
    for name, stage in stages.items():
        for dep in paths(stage.get("deps")):
            if dep.split("/")[0] in ("flatlib", "notebooks") or dep in inputs:
                continue
            assert dep in written, f"{name} depends on {dep}, which no stage writes"
