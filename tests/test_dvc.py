"""dvc.yaml against the code and the layout: the training stages' code deps are exactly the training code
(flatlib.sources.TRAINING_CODE), every other stage's exactly the import closure of the module it runs, and every
path a stage writes is the one flatlib.layout spells."""
import re
from pathlib import Path

import pytest
import yaml

from flatlib import layout
from flatlib.schema import load_params
from flatlib.sources import TRAINING_CODE, import_closure

ROOT = Path(__file__).resolve().parent.parent


def expand_stages(root: Path = ROOT) -> dict[str, dict]:
    """``name@key`` -> {cmd, deps, outs, metrics} as DVC itself resolves dvc.yaml (foreach and matrix over
    params.yaml's variants and seeds)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {stage.addressing: dict(cmd=stage.cmd, deps=[d.def_path for d in stage.deps],
                                       always_changed=stage.always_changed,
                                       outs=[o.def_path for o in stage.outs if not o.metric],
                                       metrics=[o.def_path for o in stage.outs if o.metric])
                for stage in repo.index.stages}


def module_of(cmd: str) -> str:
    """The flatlib module a stage command runs."""
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
    return expand_stages()


#: the stages that write run folders: their code is what computes the weights, not the module they run
TRAINING_STAGES = ("train", "swa", "rho_train")


def wanted_code(name: str, stage: dict, root: Path = ROOT) -> set[str]:
    """The code deps a stage must list: the training code (training stages), nothing (a stage that always runs:
    its deps would be inert), else the import closure of the module it runs (for the notebooks stage, with that
    of flatlib.report, which the notebooks import)."""
    if name.split("@")[0] in TRAINING_STAGES:
        return set(TRAINING_CODE)
    if stage.get("always_changed"):
        return set()
    module = module_of(stage["cmd"])
    return import_closure(module, root) | (import_closure("flatlib.report", root)
                                           if module == "flatlib.stages.notebooks" else set())


def missing_and_extra(name: str, stage: dict, root: Path = ROOT) -> tuple[set, set]:
    wanted, listed = wanted_code(name, stage, root), code_deps(stage.get("deps"), root)
    return wanted - listed, listed - wanted


def test_every_stage_lists_exactly_the_code_it_imports(stages):
    problems = {name: dict(zip(("missing", "not wanted"), missing_and_extra(name, stage)))
                for name, stage in stages.items()}
    problems = {name: p for name, p in problems.items() if p["missing"] or p["not wanted"]}
    assert not problems, f"dvc.yaml code deps differ from the training code or the import closures: {problems}"


def test_the_dependency_check_catches_a_deleted_dependency(stages):
    stage = dict(stages["flatness@adm-0"])
    stage["deps"] = [d for d in stage["deps"] if d != "flatlib/measure/flatness.py"]
    assert missing_and_extra("flatness@adm-0", stage) == ({"flatlib/measure/flatness.py"}, set())


def test_the_training_stages_list_exactly_the_training_code(stages):
    """train, swa and rho_train rerun when the code that computes the weights changes, and only then: not for
    the command line, the layout, the report or evaluation code (tests/test_digest.py: the same set)."""
    for name, stage in stages.items():
        if name.split("@")[0] in TRAINING_STAGES:
            assert code_deps(stage["deps"]) == set(TRAINING_CODE), name
    stage = dict(stages["train@adm-0"])
    assert missing_and_extra("train@adm-0", dict(stage, deps=stage["deps"] + ["flatlib/cli.py"])) == (
        set(), {"flatlib/cli.py"})


def test_stage_outputs_follow_the_layout(stages):
    params = load_params(ROOT / "params.yaml")
    expected = {"preflight": [layout.PREFLIGHT], "reference": [layout.REFERENCE], "featurenet": [layout.FEATURENET, layout.FEATURENET_METRICS]}
    for s in params.seeds:
        for rho in params.rho_sweep.rhos:
            run = layout.rho_run_dir(rho, s)
            expected.update({f"rho_train@{s}-{rho}": [run, layout.run_record(run)],
                             f"rho_sweep@{s}-{rho}": [layout.rho_sweep_metrics(rho, s)]})
    for s in params.seeds:
        for v in params.variants:
            expected.update({f"train@{v}-{s}": [layout.run_dir(v, s), layout.run_record(layout.run_dir(v, s))],
                             f"swa@{v}-{s}": [layout.run_dir(v, s, "swa"), layout.run_record(layout.run_dir(v, s, "swa"))],
                             f"sample@{v}-{s}": [layout.samples_dir(v, s)],
                             f"fid@{v}-{s}": [layout.variant_metrics("fid", v, s)],
                             f"quant@{v}-{s}": [layout.quant_dir(v, s), layout.variant_metrics("quant", v, s)],
                             f"flatness@{v}-{s}": [layout.variant_metrics("flatness", v, s)],
                             f"exposure@{v}-{s}": [layout.variant_metrics("exposure", v, s)],
                             f"length@{v}-{s}": [layout.length_metrics(v, s)]})
    expected["summary"] = [layout.SUMMARY, layout.PLOTS, layout.CLAIM_PARTS, layout.CLAIM_SEEDS]
    expected["fid_floor"] = [layout.FID_FLOOR]
    expected["notebooks"] = [layout.REPORTS]
    expected["publish"] = [layout.DOCS]
    written = {name: sorted(s["outs"] + s["metrics"]) for name, s in stages.items()}
    assert written == {name: sorted(p.as_posix() for p in ps) for name, ps in expected.items()}
    for name, outs in written.items():  # and the layout names the stage of each artifact it writes
        assert all(layout.stage_of(p) == name for p in outs), name


def test_every_artifact_a_stage_reads_is_written_by_a_stage(stages):
    written = {p for s in stages.values() for p in s["outs"] + s["metrics"]}
    # the summary and the notebooks read whole trees, stage length every run record (metrics/train)
    inputs = {"params.yaml", "metrics", "samples", layout.TRAIN_RECORDS.as_posix()}
    for name, stage in stages.items():
        for dep in stage["deps"]:
            if dep.split("/")[0] in ("flatlib", "notebooks") or dep in inputs:
                continue
            assert dep in written, f"{name} depends on {dep}, which no stage writes"


def test_the_summary_is_the_only_metrics_file_besides_the_featurenet(stages):
    """`dvc metrics show` stays one screen: the per-seed measurement files are plain outputs."""
    declared = sorted(p for s in stages.values() for p in s["metrics"])
    assert declared == sorted(p.as_posix() for p in (layout.FEATURENET_METRICS, layout.SUMMARY))


def test_every_plot_reads_a_file_the_summary_writes_with_a_template_that_exists():
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    files = {layout.plot_file(n).as_posix() for n in layout.PLOT_NAMES}
    used = set()
    for plot in plots:
        (name, spec), = plot.items()
        assert set(spec["y"]) <= files, name
        used |= set(spec["y"])
        assert (ROOT / ".dvc" / "plots" / f"{spec['template']}.json").is_file(), name
    assert used == files  # and every plot file is plotted


def test_the_lock_file_holds_no_stage_that_dvc_yaml_lacks(stages):
    """dvc.lock records the committed default run: an entry of a stage since renamed or removed is stale."""
    recorded = set(yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"])
    assert recorded <= set(stages), sorted(recorded - set(stages))
