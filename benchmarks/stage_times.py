"""Wall time of every dvc.yaml stage (a benchmark, not a test): runs each stage's command in dvc.yaml
order, without DVC (for machines that have no dvc, such as a bare GPU box), and prints one JSON line per
stage and a total. ``foreach`` and ``matrix`` stages are expanded and ``${...}`` is filled from params.yaml as DVC does.

    python benchmarks/stage_times.py                          # every stage
    python benchmarks/stage_times.py --skip notebooks --out stage_times.json
    python benchmarks/stage_times.py --from-runs .dvc/tmp/parallel/runs.json   # table of make repro's last run

``--from-runs`` runs nothing: it reads the jobs flatlib.stages.parallel recorded (start and end of each
``dvc repro --single-item`` job, so DVC's bookkeeping is included) and prints one Markdown row per stage group:
instances, job-seconds, their share, and the wall-clock span of the group's jobs (jobs overlap: shares are of
the job-seconds, not of the wall clock).
"""
import argparse
import itertools
import json
import re
import subprocess
import sys
import time

from flatlib.cli import cli_parser
from flatlib.config import load_yaml


def lookup(params: dict, dotted: str):
    value = params
    for key in dotted.split("."):
        value = value[key]
    return value


def expand(dvc: dict, params: dict) -> list[tuple[str, str]]:
    """(name, command) per stage instance, ``name@key`` for foreach stages, in dvc.yaml order."""
    out = []
    for name, stage in dvc["stages"].items():
        if "matrix" in stage:
            axes = {key: lookup(params, v[2:-1]) if isinstance(v, str) else v for key, v in stage["matrix"].items()}
            for values in itertools.product(*axes.values()):
                item = dict(zip(axes, values))
                key = "-".join(map(str, values))
                out.append((f"{name}@{key}", fill(stage["cmd"], params, **{f"item.{k}": v for k, v in item.items()})))
        elif "foreach" in stage:
            items = stage["foreach"]
            items = lookup(params, items[2:-1]) if isinstance(items, str) else items
            pairs = items.items() if isinstance(items, dict) else ((item, item) for item in items)
            out += [(f"{name}@{key}", fill(stage["do"]["cmd"], params, key=key, item=item)) for key, item in pairs]
        else:
            out.append((name, fill(stage["cmd"], params)))
    return out


def fill(cmd: str, params: dict, **local) -> str:
    return re.sub(r"\$\{([^}]+)\}", lambda m: str(local[m[1]] if m[1] in local else lookup(params, m[1])), cmd)


def table_of_runs(runs: list[dict]) -> str:
    """Markdown: per stage group (dvc.yaml stage name), instances, job-seconds, share and wall-clock span."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(run["stage"].split("@")[0], []).append(run)
    total = sum(r["end"] - r["start"] for r in runs)
    rows = ["| stage | instances | job-seconds | share | wall-clock span (s) |", "|---|---|---|---|---|"]
    for name, jobs in groups.items():
        seconds = sum(r["end"] - r["start"] for r in jobs)
        span = max(r["end"] for r in jobs) - min(r["start"] for r in jobs)
        rows.append(f"| {name} | {len(jobs)} | {seconds:,.0f} | {seconds / total:.0%} | {span:,.0f} |")
    wall = max(r["end"] for r in runs) - min(r["start"] for r in runs)
    rows.append(f"| **total** | {len(runs)} | {total:,.0f} | 100% | {wall:,.0f} |")
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser("python benchmarks/stage_times.py", __doc__)
    parser.add_argument("--params", default="params.yaml", help="parameter file that fills dvc.yaml's ${...}")
    parser.add_argument("--skip", nargs="*", default=[], help="stage names to leave out (e.g. notebooks)")
    parser.add_argument("--out", help="also write the timings to this JSON file")
    parser.add_argument("--from-runs", help="run nothing: print the per-stage table of flatlib.stages.parallel's "
                                            "runs.json (.dvc/tmp/parallel/runs.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.from_runs:
        with open(args.from_runs) as f:
            print(table_of_runs(json.load(f)))
        return 0
    params = load_yaml(args.params)
    stages = [(n, c) for n, c in expand(load_yaml("dvc.yaml"), params) if n.split("@")[0] not in args.skip]
    timings, start = {}, time.perf_counter()
    for name, cmd in stages:
        tick = time.perf_counter()
        result = subprocess.run(cmd, shell=True)
        timings[name] = round(time.perf_counter() - tick, 1)
        print(json.dumps(dict(stage=name, seconds=timings[name], rc=result.returncode)), flush=True)
        if result.returncode:
            return result.returncode
    total = dict(total_seconds=round(time.perf_counter() - start, 1), stages=timings)
    print(json.dumps(total), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(total, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
