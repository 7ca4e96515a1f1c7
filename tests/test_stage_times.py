"""benchmarks/stage_times.py: every dvc.yaml stage instance expanded as DVC names it, and the per-stage table of
flatlib.stages.parallel's runs.json (the README's per-stage table of make repro)."""
import importlib.util
import os
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("stage_times", os.path.join(REPO, "benchmarks", "stage_times.py"))
stage_times = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stage_times)


def test_matrix_stages_expand_to_dvcs_instance_names_with_every_item_filled():
    dvc = yaml.safe_load(open(os.path.join(REPO, "dvc.yaml")))
    params = yaml.safe_load(open(os.path.join(REPO, "params.yaml")))
    stages = dict(stage_times.expand(dvc, params))
    listed = subprocess.run([sys.executable, "-m", "dvc", "stage", "list", "--name-only"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    assert sorted(stages) == sorted(listed)
    assert all("${" not in cmd for cmd in stages.values())
    assert stages[f"train@adm-{params['seeds'][-1]}"].endswith(f"train --variant adm --seed {params['seeds'][-1]}")


def test_the_runs_table_sums_job_seconds_per_group_and_spans_the_wall_clock():
    runs = [dict(stage="train@adm-0", start=0.0, end=100.0), dict(stage="train@sam-0", start=0.0, end=200.0),
            dict(stage="sample@adm-0", start=200.0, end=250.0)]
    table = stage_times.table_of_runs(runs).splitlines()
    assert table[2] == "| train | 2 | 300 | 86% | 200 |"
    assert table[3] == "| sample | 1 | 50 | 14% | 50 |"
    assert table[-1] == "| **total** | 3 | 350 | 100% | 250 |"
